"""Generated toy datasets: the default that runs anywhere, and the test fixture.

`toy-motion` (temporal, like SSv2): a class is an ordered pair of motion primitives ("right then
up"; the primitives are the eight directions, grow, shrink and still). A grey object moves over a
fixed scene whose four quadrants have fixed colours and stripe orientations (red with horizontal
stripes top left, green "/" top right, blue "\\" bottom left, yellow vertical bottom right), so
where the object is and how large it is show in globally pooled features as the colours it hides:
a tiny CNN sees the state of the motion in every frame. Each primitive moves the object about 30%
of the frame (or scales it by about 1.85x) and the whole path is centred, so an object moving
right crosses from the left half into the right one. Shape, grey level, lighting, tint, stripe
contrast, period and phase vary per video, so appearance carries no label: the label is in how
the object's position and size change over time. The generator is symmetric under time reversal:
the reversed video of (a, b) follows exactly the path of (rev b, rev a), a different class of the
same split, so an order-blind method (frame averaging) cannot separate the two.

`toy-appearance` (spatial, like UCF101): a class is shape x colour x background texture;
motion is random per video.

Everything is derived from SHA-256 of (dataset, seed, generator version, class, index), so
regeneration writes byte-identical files (H.264 in MP4 through PyAV, one encoder thread) and a
SHA-256 manifest. The generator version is per kind (`TOY_VERSIONS`, `data_version(card)`):
changing one kind's videos leaves the other's bytes alone. Object masks are written beside the
videos (`masks/<class>/<id>.png`: the per-frame masks stacked vertically), the format I2ST's
instance masks are read from.
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

# Generator version per kind: bump a kind's version whenever the bytes it generates change. It
# seeds the videos and is written to <root>/TOY_VERSION. 2 -> 3 (motion): grey object over a fixed
# scene of coloured, striped quadrants, centred paths, larger moves, reversal-symmetric timing (v2
# translations of a coloured object were invisible after pooling: every tiny preset stayed at chance).
TOY_VERSIONS = {"appearance": "2", "motion": "3"}
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
        return _render_motion(cls, rng, size, frames)
    colour_name, rest = cls.split("_", 1)  # appearance: unchanged since generator version 2
    shape, _, texture = rest.partition("_on_")
    colour = np.array(COLOURS[colour_name], np.float32) + rng.normal(0, 10, 3)
    movable = [p for p in REV if p not in ("grow", "shrink")]
    prims = (movable[rng.integers(len(movable))], movable[rng.integers(len(movable))])
    tex_amp = 60.0
    # near-grey, so the class colour stands out while brightness and tint still vary
    background = float(rng.uniform(40, 215)) + rng.normal(0, 12, 3).astype(np.float32)
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


# -- toy-motion (generator version 3) -----------------------------------------------------------
SCENE = ("h", "d", "a", "v")  # stripe orientation of the top-left, top-right, bottom-left, bottom-right quadrant
SCENE_COLOURS = ((200, 70, 60), (70, 170, 70), (60, 90, 200), (200, 180, 60))  # red, green, blue, yellow quadrants
MOTION_SHAPES = ("square", "disc", "triangle", "cross")  # solid: the object hides the stripes behind it


def motion_path(prims: tuple[str, str], n: int, move: float, zoom: float) -> tuple[np.ndarray, np.ndarray]:
    """Centre offsets [n, 2] and log-radius offsets [n] of the path, both centred on their range.

    The first primitive runs until time (n - 1) / 2, the second after it (the step across that
    midpoint is split between them), each moving `move` pixels (diagonals: `move` along the
    diagonal) or scaling by exp(`zoom`). Reversing the frames of (a, b) gives exactly the path of
    (REV[b], REV[a]).
    """
    mid = (n - 1) / 2
    pos, logr = [np.zeros(2)], [0.0]
    for step in range(1, n):
        w = min(max(mid - (step - 1), 0.0), 1.0)  # share of this step spent in the first primitive
        d, g = np.zeros(2), 0.0
        for prim, share in ((prims[0], w), (prims[1], 1.0 - w)):
            d = d + share * np.array(DIRS[prim]) * move / mid
            g += share * {"grow": zoom, "shrink": -zoom}.get(prim, 0.0) / mid
        pos.append(pos[-1] + d)
        logr.append(logr[-1] + g)
    pos, logr = np.stack(pos), np.array(logr)
    return pos - (pos.min(axis=0) + pos.max(axis=0)) / 2, logr - (logr.min() + logr.max()) / 2


def _stripes(orientation: str, size: int, period: float, phase: float) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    coord = {"h": yy, "v": xx, "d": (xx + yy) / math.sqrt(2), "a": (xx - yy) / math.sqrt(2)}[orientation]
    return (np.floor((coord + phase) / (period / 2)) % 2).astype(np.float32)


def motion_scene(size: int, period: float, phases: np.ndarray) -> np.ndarray:
    """The fixed layout [size, size] in {0, 1}: four quadrants striped in the SCENE orientations."""
    half = size // 2
    out = np.empty((size, size), np.float32)
    for k, orientation in enumerate(SCENE):
        ys, xs = slice(0, half) if k < 2 else slice(half, size), slice(0, half) if k % 2 == 0 else slice(half, size)
        out[ys, xs] = _stripes(orientation, size, period, float(phases[k]))[ys, xs]
    return out


def _render_motion(cls: str, rng: np.random.Generator, size: int, frames: int) -> tuple[np.ndarray, np.ndarray]:
    a, _, b = cls.partition("_then_")
    shape = MOTION_SHAPES[rng.integers(len(MOTION_SHAPES))]
    grey = float(rng.uniform(100, 155))  # a grey object: it hides the scene's colours, adds none
    light = float(rng.uniform(0.9, 1.05))
    hues = np.array(SCENE_COLOURS, np.float32) * light + rng.normal(0, 4, (4, 3))
    amp = float(rng.uniform(15, 30))
    stripes = motion_scene(size, float(rng.uniform(0.16, 0.22)) * size, rng.uniform(0, size, 4))
    move = float(rng.uniform(0.27, 0.33)) * size
    offsets, logr = motion_path((a, b), frames, move, math.log(float(rng.uniform(1.7, 2.0))))
    radii = float(rng.uniform(0.18, 0.22)) * size * np.exp(logr)
    margin = radii.max() + 1
    centre = size / 2 + rng.uniform(-0.05, 0.05, 2) * size
    lo, hi = margin - offsets.min(axis=0), size - margin - offsets.max(axis=0)
    start = np.where(lo <= hi, np.clip(centre, lo, np.maximum(lo, hi)), size / 2)
    noise = rng.normal(0, 6, (size, size, 3)).astype(np.float32)
    half = size // 2
    quadrant = (np.arange(size)[:, None] >= half) * 2 + (np.arange(size)[None, :] >= half)
    base = hues[quadrant] + amp * (stripes[..., None] - 0.5) + noise
    video = np.empty((frames, size, size, 3), np.uint8)
    masks = np.empty((frames, size, size), bool)
    for t in range(frames):
        cx, cy = start + offsets[t]
        mask = _shape_mask(shape, size, cx, cy, radii[t])
        img = base.copy()
        img[mask] = grey
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


def data_version(card: DatasetCard) -> str:
    """The generator version of a toy card's videos (`TOY_VERSIONS` of its generator kind)."""
    return TOY_VERSIONS[(card.toy or {})["generator"]]


def is_prepared(root: Path, card: DatasetCard) -> bool:
    """A complete dataset written by the card's generator version (the manifest is written last)."""
    version = Path(root) / "TOY_VERSION"
    return ((Path(root) / MANIFEST).exists() and version.exists()
            and version.read_text().strip() == data_version(card))


def generate(card: DatasetCard, root: Path, progress: Callable[[int, int], None] | None = None) -> Path:
    """Write the toy dataset under `root` (atomically: a temp folder renamed into place)."""
    spec = card.toy or {}
    kind, seed = spec["generator"], str(spec["seed"])
    size, frames = int(spec["size"]), int(spec["frames"])
    lines = [line for split in ("train", "val", "test") for line in split_lists(card)[split]]
    root = Path(root)
    version = data_version(card)
    if is_prepared(root, card):
        return root
    if root.exists() and any(root.iterdir()):
        from fsar_bench.errors import FsarError

        if (root / MANIFEST).exists():
            raise FsarError(f"{root} holds {card.name} from an older generator version",
                            f"delete that folder; it is regenerated (version {version}) on the next run")
        raise FsarError(f"{root} exists, is not empty and holds no complete {card.name} dataset",
                        "pass an empty or new --root, or delete that folder")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        digests = []
        for i, line in enumerate(lines):
            cls, vid = line.rsplit("/", 1)
            rng = np.random.default_rng(_int(card.name, seed, version, line))
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
        (tmp / "TOY_VERSION").write_text(version + "\n")
        digests.append(f"{hashlib.sha256((tmp / 'TOY_VERSION').read_bytes()).hexdigest()}  TOY_VERSION")
        (tmp / MANIFEST).write_text("\n".join(sorted(digests, key=lambda d: d[66:])) + "\n")
        if root.exists():
            root.rmdir()
        os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root
