"""Generated toy datasets: the default that runs anywhere, and the test fixture.

`toy-motion` (temporal, like SSv2): a class is an ordered pair of motion primitives ("right then
up"); the object's shape and colours are random per video. The time-reversed video of (a, b) is
(rev b, rev a), a different class of the same split, so an order-blind method cannot separate
the two. `toy-appearance` (spatial, like UCF101): a class is shape x colour x background texture;
motion is random per video.

Everything is derived from SHA-256 of (dataset, seed, class, index), so regeneration writes
byte-identical files (H.264 in MP4 through PyAV, one encoder thread) and a SHA-256 manifest.
Object masks are written beside the videos (`masks/<class>/<id>.png`: the per-frame masks stacked
vertically), the format I2ST's instance masks are read from.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from fsar_bench.data.cards import DatasetCard

TOY_VERSION = "1"
MANIFEST = "MANIFEST.sha256"
REV = {"right": "left", "left": "right", "up": "down", "down": "up", "upright": "downleft",
       "downleft": "upright", "upleft": "downright", "downright": "upleft", "grow": "shrink",
       "shrink": "grow", "still": "still"}
DIRS = {"right": (1, 0), "left": (-1, 0), "up": (0, -1), "down": (0, 1), "upright": (0.7, -0.7),
        "downleft": (-0.7, 0.7), "upleft": (-0.7, -0.7), "downright": (0.7, 0.7), "grow": (0, 0),
        "shrink": (0, 0), "still": (0, 0)}
SHAPES = ("square", "disc", "triangle", "cross", "ring")
COLOURS = {"red": (220, 40, 40), "green": (40, 190, 60), "blue": (50, 80, 230), "yellow": (235, 210, 40),
           "magenta": (200, 50, 200)}
TEXTURES = ("plain", "hstripes", "vstripes", "checker")


def _int(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:8], "big")


def _rank(seed: str, items: list) -> list:
    """A seeded, library-independent shuffle: sort by SHA-256 of (seed, item)."""
    return sorted(items, key=lambda it: hashlib.sha256(f"{seed}:{it}".encode()).digest())


# -- class definitions ------------------------------------------------------------------------
def motion_classes(seed: str) -> dict[str, list[str]]:
    """The 100 non-palindromic ordered pairs form 50 reversal pairs; whole pairs go to one split."""
    prims = list(REV)
    pairs = [(a, b) for a in prims for b in prims if a != b and b != REV[a]]
    orbits = sorted({tuple(sorted([f"{a}_then_{b}", f"{REV[b]}_then_{REV[a]}"])) for a, b in pairs})
    orbits = _rank(seed + ":orbits", orbits)
    cut = {"test": orbits[:12], "val": orbits[12:18], "train": orbits[18:]}
    return {split: sorted(c for orbit in o for c in orbit) for split, o in cut.items()}


def appearance_classes(seed: str) -> dict[str, list[str]]:
    classes = _rank(seed + ":classes", [f"{c}_{s}_on_{t}" for s in SHAPES for c in COLOURS for t in TEXTURES])
    return {"test": sorted(classes[:24]), "val": sorted(classes[24:36]), "train": sorted(classes[36:])}


# -- rendering --------------------------------------------------------------------------------
def _shape_mask(shape: str, size: int, cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    dx, dy = xx - cx, yy - cy
    if shape == "square":
        return (np.abs(dx) <= r) & (np.abs(dy) <= r)
    if shape == "disc":
        return dx * dx + dy * dy <= r * r
    if shape == "triangle":
        return (dy <= r) & (dy >= -r) & (np.abs(dx) <= (dy + r) / 2)
    if shape == "cross":
        return ((np.abs(dx) <= r / 3) & (np.abs(dy) <= r)) | ((np.abs(dy) <= r / 3) & (np.abs(dx) <= r))
    if shape == "ring":
        d2 = dx * dx + dy * dy
        return (d2 <= r * r) & (d2 >= (0.55 * r) ** 2)
    raise ValueError(shape)


def _texture(kind: str, size: int, period: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    if kind == "plain":
        return np.zeros((size, size), np.float32)
    if kind == "hstripes":
        return ((yy // period) % 2).astype(np.float32)
    if kind == "vstripes":
        return ((xx // period) % 2).astype(np.float32)
    return (((yy // period) + (xx // period)) % 2).astype(np.float32)


def _trajectory(prims: tuple[str, str], n: int, speed: float, r0: float) -> tuple[np.ndarray, np.ndarray]:
    """Offsets [n, 2] and radii [n] for the first primitive in frames < n/2, the second after."""
    pos, rad = [np.zeros(2)], [r0]
    for t in range(1, n):
        prim = prims[0] if t < n // 2 else prims[1]
        step = np.array(DIRS[prim]) * speed
        grow = {"grow": 0.06, "shrink": -0.06}.get(prim, 0.0) * r0
        pos.append(pos[-1] + step)
        rad.append(rad[-1] + grow)
    return np.stack(pos), np.array(rad)


def render(kind: str, cls: str, rng: np.random.Generator, size: int, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """(video uint8 [T, size, size, 3], masks bool [T, size, size]) of one video of class `cls`."""
    if kind == "motion":
        a, _, b = cls.partition("_then_")
        prims = (a, b)
        shape = SHAPES[rng.integers(len(SHAPES))]
        colour = rng.integers(30, 226, 3).astype(np.float32)
        texture, tex_amp = TEXTURES[rng.integers(len(TEXTURES))], 25.0
    else:
        colour_name, rest = cls.split("_", 1)
        shape, _, texture = rest.partition("_on_")
        colour = np.array(COLOURS[colour_name], np.float32) + rng.normal(0, 10, 3)
        movable = [p for p in REV if p not in ("grow", "shrink")]
        prims = (movable[rng.integers(len(movable))], movable[rng.integers(len(movable))])
        tex_amp = 60.0
    background = rng.integers(20, 236, 3).astype(np.float32)
    tex = _texture(texture, size, int(rng.integers(3, 7)))
    speed = float(rng.uniform(0.13, 0.17)) * size / math.sqrt(frames)
    r0 = float(rng.uniform(0.12, 0.17)) * size
    offsets, radii = _trajectory(prims, frames, speed, r0)
    margin = radii.max() + 1
    lo = margin - offsets.min(axis=0)
    hi = size - margin - offsets.max(axis=0)
    start = np.array([rng.uniform(lo[i], max(lo[i], hi[i])) for i in range(2)])
    noise = rng.normal(0, 6, (size, size, 3)).astype(np.float32)
    video = np.empty((frames, size, size, 3), np.uint8)
    masks = np.empty((frames, size, size), bool)
    for t in range(frames):
        cx, cy = start + offsets[t]
        mask = _shape_mask(shape, size, cx, cy, radii[t])
        img = background[None, None, :] + tex_amp * (tex[..., None] - 0.5) + noise
        img[mask] = colour
        video[t] = np.clip(img, 0, 255).astype(np.uint8)
        masks[t] = mask
    return video, masks


def _write_mp4(path: Path, video: np.ndarray, fps: int = 12) -> None:
    import av

    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps, options={"crf": "16", "preset": "medium"})
        stream.width, stream.height = video.shape[2], video.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_count = 1  # deterministic bitstream
        for frame in video:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _write_mask_png(path: Path, masks: np.ndarray) -> None:
    from PIL import Image

    t, h, w = masks.shape
    Image.fromarray((masks.reshape(t * h, w) * 255).astype(np.uint8), mode="L").save(path, optimize=False)


def read_mask_strip(path: Path, n_frames: int) -> np.ndarray:
    """Masks [n_frames, H, W] (float 0..1) from a vertical strip PNG."""
    from PIL import Image

    with Image.open(path) as img:
        arr = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
    return arr.reshape(n_frames, arr.shape[0] // n_frames, arr.shape[1])


# -- the dataset on disk ----------------------------------------------------------------------
def split_lists(card: DatasetCard) -> dict[str, list[str]]:
    """The `<class>/<id>` lines of each split, as the generator defines them."""
    spec = card.toy or {}
    seed, per_class = str(spec["seed"]), int(spec["videos_per_class"])
    classes = (motion_classes if spec["generator"] == "motion" else appearance_classes)(seed)
    return {split: [f"{c}/v{k:03d}" for c in cls for k in range(per_class)] for split, cls in classes.items()}


def is_prepared(root: Path) -> bool:
    return (root / MANIFEST).exists()


def generate(card: DatasetCard, root: Path, progress: Callable[[int, int], None] | None = None) -> Path:
    """Write the toy dataset under `root` (atomically: a temp folder renamed into place)."""
    spec = card.toy or {}
    kind, seed = spec["generator"], str(spec["seed"])
    size, frames = int(spec["size"]), int(spec["frames"])
    lines = [line for split in ("train", "val", "test") for line in split_lists(card)[split]]
    root = Path(root)
    if is_prepared(root):
        return root
    if root.exists() and any(root.iterdir()):
        from fsar_bench.errors import FsarError

        raise FsarError(f"{root} exists, is not empty and holds no complete {card.name} dataset",
                        "pass an empty or new --root, or delete that folder")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        digests = []
        for i, line in enumerate(lines):
            cls, vid = line.rsplit("/", 1)
            rng = np.random.default_rng(_int(card.name, seed, TOY_VERSION, line))
            video, masks = render(kind, cls, rng, size, frames)
            rel = card.layout.pattern.format(cls=cls, cls_=cls, id=vid)
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            _write_mp4(tmp / rel, video)
            mask_rel = f"masks/{cls}/{vid}.png"
            (tmp / mask_rel).parent.mkdir(parents=True, exist_ok=True)
            _write_mask_png(tmp / mask_rel, masks)
            for r in (rel, mask_rel):
                digests.append(f"{hashlib.sha256((tmp / r).read_bytes()).hexdigest()}  {r}")
            if progress:
                progress(i + 1, len(lines))
        (tmp / MANIFEST).write_text("\n".join(sorted(digests, key=lambda d: d[66:])) + "\n")
        if root.exists():
            root.rmdir()
        os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root
