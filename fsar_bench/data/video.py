"""Reading frames from video files and frame folders.

decord (installed from the maintained `decord2` distribution, same `import decord`) seeks
frames directly and is the default; PyAV decodes sequentially and is the fallback wherever
decord is missing or fails on a file. Pre-extracted frame folders (numbered images) are read
with Pillow. Every reader returns uint8 RGB arrays [T, H, W, 3].
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from fsar_bench.errors import FsarError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")
# Containers of video datasets that ffmpeg (behind decord and PyAV) reads. A file with another
# extension that does not decode is reported as an unsupported container rather than as corrupt.
VIDEO_EXTS = frozenset({".mp4", ".m4v", ".mov", ".avi", ".webm", ".mkv", ".flv", ".wmv", ".asf", ".mpg", ".mpeg",
                        ".ts", ".mts", ".m2ts", ".vob", ".ogv", ".ogg", ".3gp", ".gif", ".divx", ".mjpeg", ".y4m",
                        ".rm", ".rmvb"})
_BACKEND = os.environ.get("FSAR_BENCH_DECODER", "auto")  # auto | decord | pyav


class VideoError(FsarError):
    """A video that is missing or cannot be decoded."""


def _frame_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)


# A selector maps the frame count to the frame indices to decode (None: count only).
Selector = Callable[[int], list[int]] | None


def _decord_read(path: Path, select: Selector) -> tuple[list[int], np.ndarray | None]:
    import decord

    vr = decord.VideoReader(str(path), num_threads=1)
    n = len(vr)
    if n == 0:
        raise ValueError("no video frames")
    if select is None:
        return [n], None
    idx = select(n)
    return idx, vr.get_batch(idx).asnumpy()


def _pyav_read(path: Path, select: Selector) -> tuple[list[int], np.ndarray | None]:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    if not frames:
        raise ValueError("no video frames")
    if select is None:
        return [len(frames)], None
    idx = select(len(frames))
    return idx, np.stack([frames[i] for i in idx])


def _frames_read(folder: Path, select: Selector) -> tuple[list[int], np.ndarray | None]:
    from PIL import Image

    paths = _frame_files(folder)
    if not paths:
        raise ValueError("no image files")
    if select is None:
        return [len(paths)], None
    idx = select(len(paths))
    arrays = []
    for i in idx:
        with Image.open(paths[i]) as img:
            arrays.append(np.asarray(img.convert("RGB")))
    return idx, np.stack(arrays)


def _read(path: Path, select: Selector) -> tuple[list[int], np.ndarray | None]:
    if path.is_dir():
        readers = [_frames_read]
    elif _BACKEND == "pyav":
        readers = [_pyav_read]
    elif _BACKEND == "decord":
        readers = [_decord_read]
    else:
        readers = [_decord_read, _pyav_read]
    errors = []
    for reader in readers:
        try:
            return reader(path, select)
        except (NameError, AttributeError, AssertionError):  # our bugs, not the file's
            raise
        except ImportError as exc:
            errors.append(f"{reader.__name__.strip('_').split('_')[0]} not installed ({exc})")
        except Exception as exc:  # noqa: BLE001  (decoders raise many types; report them all)
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            errors.append(f"{reader.__name__.strip('_').split('_')[0]}: {first}")
    suffix = path.suffix.lower()
    if suffix in IMAGE_EXTS:
        raise VideoError(f"{path} is a {suffix} image, not a video",
                         'for folders of frame images set the layout to {kind: frames, pattern: "{cls}/{id}"}')
    if suffix and suffix not in VIDEO_EXTS:
        raise VideoError(f"unsupported container {suffix} of {path} ({'; '.join(errors)})",
                         "convert the videos to mp4, avi, webm or mkv (e.g. `ffmpeg -i IN OUT.mp4`) and point the "
                         "dataset layout pattern at them")
    raise VideoError(f"cannot decode {path} ({'; '.join(errors)})",
                     "re-download or re-encode the file, or run `fsar-bench data check` to list all bad files")


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise VideoError(f"missing video {path}", "check the dataset root and layout (`fsar-bench data check`)")


def num_frames(path: Path) -> int:
    """Frame count of a video file or frame folder."""
    _check_exists(path)
    return _read(path, None)[0][0]


# Small files (the toy datasets, short test fixtures) are decoded whole once and kept in a bounded
# LRU cache, so repeated epochs and runs in one process do not decode them again. Real dataset
# videos are larger than the threshold and are always read by seeking to the sampled frames.
SMALL_FILE_BYTES = 64 * 1024
_CACHE_LIMIT = int(os.environ.get("FSAR_BENCH_FRAME_CACHE_MB", "512")) << 20
_cache: OrderedDict[tuple, np.ndarray] = OrderedDict()
_cache_bytes = 0
_lock = threading.Lock()


def _cached_whole(path: Path) -> np.ndarray | None:
    global _cache_bytes
    st = path.stat()
    if _CACHE_LIMIT <= 0 or not path.is_file() or st.st_size > SMALL_FILE_BYTES:
        return None
    key = (str(path), st.st_mtime_ns, st.st_size)
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    _, frames = _read(path, lambda n: list(range(n)))
    assert frames is not None
    with _lock:
        _cache[key] = frames
        _cache_bytes += frames.nbytes
        while _cache_bytes > _CACHE_LIMIT and len(_cache) > 1:
            _, old = _cache.popitem(last=False)
            _cache_bytes -= old.nbytes
    return frames


def read_frames(path: Path, select: Callable[[int], list[int]]) -> tuple[np.ndarray, list[int]]:
    """Open once, count frames n, decode the frames at `select(n)`: ([T, H, W, 3] uint8, indices)."""
    _check_exists(path)
    whole = _cached_whole(path)
    if whole is not None:
        idx = select(len(whole))
        return whole[idx], idx
    idx, frames = _read(path, select)
    assert frames is not None
    return frames, idx
