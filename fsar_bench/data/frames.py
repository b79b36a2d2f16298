"""Frame folders: which files are the frames, in which order, and whether they are intact.

Public releases name frames `00000001.jpg` (TRX, fsar-lib), `img_00001.jpg` (MMAction2
rawframes, beside `flow_x_00001.jpg` / `flow_y_00001.jpg` when optical flow was extracted) or
`frame0001.png` / `frame_1.png`. A frame is an image `<prefix><number>.<ext>` (JPEG, PNG or BMP);
frames are ordered by their number, not by name, so an unpadded `img_10` follows `img_9`, and
frame index i (what `sampling.test_indices` returns) is the i-th frame in that order, whatever
the first number is. One folder holds one sequence: if several prefixes are present the RGB one
(`img_`, `image_`, `frame`, `frame_`, `im_` or no prefix) is used and flow images are ignored.

`inspect` reads only the first 4 KB and the last bytes of a file (its format's start and end
markers and the image size in its header), so every frame of a folder can be checked for
truncation and for a size differing from the others at a small cost; `load` decodes a frame
fully, as evaluation does.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")
RGB_PREFIXES = ("", "img_", "img", "image_", "image", "frame_", "frame", "im_")
_NUMBERED = re.compile(r"^(?P<prefix>.*?)(?P<num>\d+)$")
NO_JPEG_END = "truncated (no JPEG end marker)"
_HEAD, _TAIL = 4096, 32  # bytes read at the start and the end of each frame


class FrameFolderError(ValueError):
    """A frame folder whose frames cannot be found or read; the message names the file."""


def frame_files(folder: Path) -> list[Path]:
    """The frames of `folder` in frame order (see the module docstring)."""
    groups: dict[str, list[tuple[int, str]]] = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            stem, ext = os.path.splitext(entry.name)
            m = _NUMBERED.match(stem)
            if ext.lower() in IMAGE_EXTS and m and entry.is_file():
                groups.setdefault(m["prefix"], []).append((int(m["num"]), entry.name))
    if not groups:
        raise FrameFolderError("no numbered frame images (e.g. 00000001.jpg, img_00001.jpg, frame0001.png)")
    prefix = next(iter(groups))
    if len(groups) > 1:
        rgb = [p for p in groups if p.lower() in RGB_PREFIXES]
        if len(rgb) != 1:
            names = ", ".join(sorted(f"{p}*" for p in groups))
            raise FrameFolderError(f"frames of several sequences ({names}); keep one sequence per folder")
        prefix = rgb[0]
    frames = sorted(groups[prefix])
    for (a, name_a), (b, name_b) in zip(frames, frames[1:]):
        if a == b:
            raise FrameFolderError(f"two frames numbered {a} ({name_a}, {name_b})")
    return [folder / name for _, name in frames]


def _format(head: bytes) -> str | None:
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"BM"):
        return "BMP"
    return None


_SOF = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # JPEG start-of-frame markers (not DHT, JPG, DAC)


def _jpeg_size(head: bytes) -> tuple[int, int] | None:
    """(width, height) from the first start-of-frame segment within `head`, if it is there."""
    i = 2
    while i + 9 <= len(head):
        if head[i] != 0xFF:
            return None
        marker = head[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _SOF:
            return int.from_bytes(head[i + 7:i + 9], "big"), int.from_bytes(head[i + 5:i + 7], "big")
        i += 2 + int.from_bytes(head[i + 2:i + 4], "big")
    return None


def _size(head: bytes, kind: str) -> tuple[int, int] | None:
    if kind == "PNG" and len(head) >= 24:
        return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    if kind == "BMP" and len(head) >= 26:
        width, height = (int.from_bytes(head[i:i + 4], "little", signed=True) for i in (18, 22))
        return width, abs(height)  # a negative height is a top-down BMP
    return _jpeg_size(head) if kind == "JPEG" else None


def inspect(path: Path) -> tuple[str | None, tuple[int, int] | None]:
    """(why the file is not a complete JPEG, PNG or BMP or None, its (width, height) if the header
    shows it). Reads only the first 4 KB and the last 32 bytes."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(_HEAD)
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - _TAIL))
            tail = fh.read()
    except OSError as exc:
        return f"cannot read ({exc.strerror or exc})", None
    if size == 0:
        return "empty file", None
    kind = _format(head)
    if kind is None:
        return "not a JPEG, PNG or BMP image", None
    if kind == "JPEG" and b"\xff\xd9" not in tail:  # EOI; in entropy-coded data 0xFF is always stuffed
        return NO_JPEG_END, None
    if kind == "PNG" and b"IEND\xaeB`\x82" not in tail:
        return "truncated (no PNG IEND chunk)", None
    if kind == "BMP" and len(head) >= 6 and int.from_bytes(head[2:6], "little") > size:
        return "truncated (shorter than its BMP header says)", None
    return None, _size(head, kind)


def _decode(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as exc:  # PIL raises these for damaged data
        raise FrameFolderError(f"frame {path.name}: {str(exc).splitlines()[0] or type(exc).__name__}") from None


def _checked(path: Path) -> tuple[str | None, tuple[int, int] | None]:
    """`inspect`, except that a JPEG whose end marker is not among its last bytes (some writers
    append data after it) is complete if an end marker follows its last start-of-scan marker
    (0xFF is byte-stuffed in scan data, so neither marker occurs inside it)."""
    problem, size = inspect(path)
    if problem == NO_JPEG_END:
        try:
            data = path.read_bytes()
        except OSError as exc:
            return f"cannot read ({exc.strerror or exc})", None
        if data.rfind(b"\xff\xd9") > data.rfind(b"\xff\xda") >= 0:
            return None, _jpeg_size(data[:_HEAD])
    return problem, size


def check_structure(path: Path) -> str | None:
    """None if the file is a complete JPEG, PNG or BMP, else why not (one line)."""
    return _checked(path)[0]


def load(path: Path) -> np.ndarray:
    """One frame, fully decoded: uint8 RGB [H, W, 3]. A truncated image raises (never padded grey,
    even where Pillow's LOAD_TRUNCATED_IMAGES is set, as training code often does)."""
    problem = check_structure(path)
    if problem:
        raise FrameFolderError(f"frame {path.name}: {problem}")
    return _decode(path)


def load_frames(paths: list[Path]) -> np.ndarray:
    """[T, H, W, 3] uint8 of the given frames; frames of different sizes are an error naming both."""
    arrays = [load(p) for p in paths]
    for p, a in zip(paths[1:], arrays[1:]):
        if a.shape != arrays[0].shape:
            raise FrameFolderError(f"frames of different sizes ({paths[0].name} is {_wh(arrays[0].shape)}, "
                                   f"{p.name} is {_wh(a.shape)})")
    return np.stack(arrays)


def _wh(shape: tuple[int, ...]) -> str:
    return f"{shape[1]}x{shape[0]}"


def verify(folder: Path, select: Callable[[int], list[int]] | None = None) -> int:
    """Check every frame's start and end markers and header size, then decode the frames at
    `select(n)`; returns the frame count n. All frames must have one size (a batch is stacked)."""
    paths = frame_files(folder)
    first: tuple[Path, tuple[int, int]] | None = None
    for p in paths:
        problem, size = _checked(p)
        if problem:
            raise FrameFolderError(f"frame {p.name}: {problem}")
        if size is not None and first is None:
            first = (p, size)
        elif size is not None and first is not None and size != first[1]:
            raise FrameFolderError(f"frames of different sizes ({first[0].name} is {first[1][0]}x{first[1][1]}, "
                                   f"{p.name} is {size[0]}x{size[1]})")
    if select is not None:
        load_frames([paths[i] for i in select(len(paths))])
    return len(paths)
