"""Reading frames from video files and frame folders.

decord (installed from the maintained `decord2` distribution, same `import decord`) seeks
frames directly and is the default; PyAV decodes sequentially and is the fallback wherever
decord is missing or fails on a file (`FSAR_BENCH_DECODER=auto`, the default; `decord` or
`pyav` forces one). Where both decode a file they return the same frames. Pre-extracted frame
folders are read with Pillow (fsar_bench/data/frames.py). Every reader returns uint8 RGB arrays
[T, H, W, 3]; decoder log lines are kept off the terminal (fsar_bench/data/quiet.py).

decord2 3.4.0 mishandles frames whose width w is not a multiple of 64 while 3 * ceil(w / 64) * 64
is a multiple of w, i.e. w in {1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 96, 144} (found by decoding
every width from 1 to 399 px, any height, codec, pixel format and container): it pads each RGB
row to a multiple of 64 pixels and, when the padded row divides evenly by the width, takes the
padding for extra channels, so `get_batch` fails with `DECORDArrayCopyFromTo: from_size ==
to_size (6144 vs. 3072)` and single-frame indexing returns [H, W, 6] or [H, W, 4] arrays. Other
widths (every real benchmark video is wider than 144 px) decode to the same frames as PyAV.
`auto` falls back to PyAV on such files; batches of another shape than [T, H, W, 3] are refused.
"""

from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

from fsar_bench.data import frames as frame_folder
from fsar_bench.data.frames import IMAGE_EXTS
from fsar_bench.data.quiet import quiet_decoders, silence_decord, silence_pyav
from fsar_bench.errors import FsarError

# Containers of video datasets that ffmpeg (behind decord and PyAV) reads. A file with another
# extension that does not decode is reported as an unsupported container rather than as corrupt.
VIDEO_EXTS = frozenset({".mp4", ".m4v", ".mov", ".avi", ".webm", ".mkv", ".flv", ".wmv", ".asf", ".mpg", ".mpeg",
                        ".ts", ".mts", ".m2ts", ".vob", ".ogv", ".ogg", ".3gp", ".gif", ".divx", ".mjpeg", ".y4m",
                        ".rm", ".rmvb"})
_BACKEND = os.environ.get("FSAR_BENCH_DECODER", "auto")  # auto | decord | pyav
# the frame widths decord2 3.4.0 returns with padded rows (see the module docstring)
DECORD_BAD_WIDTHS = frozenset(w for w in range(1, 400) if w % 64 and 3 * -(-w // 64) * 64 % w == 0)
_LOG_PREFIX = re.compile(r"\[\d\d:\d\d:\d\d\] \S+:\d+: ")  # decord's `[09:13:43] file.cc:218: `


class VideoError(FsarError):
    """A video that is missing or cannot be decoded."""


class DecordWidthBug(ValueError):
    """decord2 returned padded rows (a frame width of DECORD_BAD_WIDTHS); the file itself is fine."""


# A selector maps the frame count to the frame indices to decode (None: count only).
Selector = Callable[[int], list[int]] | None


_import_lock = threading.Lock()
_decord = None  # the module, once fully imported


def import_decord():
    """`import decord`, with its native library loaded RTLD_LOCAL.

    decord's loader dlopens libdecord.so RTLD_GLOBAL, which puts its bundled FFmpeg and libx264
    (another build than PyAV's, with the same versioned symbols) in the global symbol scope; PyAV
    imported afterwards binds its FFmpeg calls to decord's copy, so it then encodes other bytes
    (the toy generator, in a process that decoded first) and decodes with another build: the
    result depended on which package was imported first. Loaded locally, each package uses its
    own FFmpeg. (The CUDA libraries decord preloads stay global: its GPU decoder needs them so.)
    """
    global _decord
    if _decord is not None:
        return _decord
    import ctypes

    with _import_lock:  # a thread never sees a half-imported module (nor a half-patched ctypes)
        if _decord is None:
            real = ctypes.CDLL

            def cdll(name, mode=ctypes.DEFAULT_MODE, *args, **kwargs):
                if name and os.path.basename(str(name)).startswith("libdecord"):
                    mode = ctypes.RTLD_LOCAL
                return real(name, mode, *args, **kwargs)

            ctypes.CDLL = cdll  # type: ignore[misc,assignment]
            try:
                import decord
            finally:
                ctypes.CDLL = real  # type: ignore[misc]
            _decord = decord
    return _decord


def _decord_read(path: Path, select: Selector) -> tuple[list[int], np.ndarray | None]:
    decord = import_decord()
    silence_decord(decord)
    vr = decord.VideoReader(str(path), num_threads=1)
    n = len(vr)
    if n == 0:
        raise ValueError("no video frames")
    if select is None:
        return [n], None
    idx = select(n)
    try:
        batch = vr.get_batch(idx).asnumpy()
    except Exception as exc:  # noqa: BLE001  (decord raises DECORDError subclasses of several kinds)
        if "DECORDArrayCopyFromTo" in str(exc):
            widths = ", ".join(map(str, sorted(DECORD_BAD_WIDTHS)))
            raise DecordWidthBug(f"decord {getattr(decord, '__version__', '?')} cannot return frames of this width "
                                 f"(it pads rows for widths {widths} px); FSAR_BENCH_DECODER=auto falls back to "
                                 "PyAV") from None
        raise
    if batch.ndim != 4 or batch.shape[0] != len(idx) or batch.shape[-1] != 3:
        raise ValueError(f"decord returned frames of shape {tuple(batch.shape)}, not [{len(idx)}, H, W, 3]")
    return idx, batch


def _pyav_read(path: Path, select: Selector) -> tuple[list[int], np.ndarray | None]:
    import av

    silence_pyav(av)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if select is None:
            n = sum(1 for _ in container.decode(stream))
        else:  # keep the decoded (YUV) frames, convert only the selected ones to RGB
            decoded = list(container.decode(stream))
            n = len(decoded)
    if n == 0:
        raise ValueError("no video frames")
    if select is None:
        return [n], None
    idx = select(n)
    return idx, np.stack([decoded[i].to_ndarray(format="rgb24") for i in idx])


def _frames_read(folder: Path, select: Selector) -> tuple[list[int], np.ndarray | None]:
    paths = frame_folder.frame_files(folder)
    if select is None:
        return [len(paths)], None
    idx = select(len(paths))
    return idx, frame_folder.load_frames([paths[i] for i in idx])


def _reason(exc: BaseException) -> str:
    """The first line of a decoder's message, without decord's `[time] file.cc:NN:` prefixes."""
    text = _LOG_PREFIX.sub("", str(exc)).strip()
    return text.splitlines()[0] if text else type(exc).__name__


T = TypeVar("T")


def _in_folder(folder: Path, fn: Callable[[], T]) -> T:
    """Run a frame-folder reader; its failures become a VideoError naming the folder and the frame."""
    try:
        return fn()
    except OSError as exc:
        raise VideoError(f"cannot read frame folder {folder} ({exc.strerror or exc})",
                         "check the dataset root and its permissions") from None
    except ValueError as exc:  # FrameFolderError: the message names the frame
        raise VideoError(f"cannot decode {folder} ({_reason(exc)})",
                         "re-extract the frames of this video, or run `fsar-bench data check` to list all bad "
                         "folders") from None


def verify_frame_folder(folder: Path, frames: int) -> int:
    """What the pre-flight probe does to a frame folder: every frame's start and end markers, and a
    full decode of the `frames` test frames (segment centres); returns the frame count."""
    from fsar_bench.data.sampling import test_indices

    _check_exists(folder)
    return _in_folder(folder, lambda: frame_folder.verify(folder, lambda n: test_indices(n, frames)))


def _read(path: Path, select: Selector) -> tuple[list[int], np.ndarray | None]:
    if path.is_dir():
        return _in_folder(path, lambda: _frames_read(path, select))
    if _BACKEND == "pyav":
        readers = [_pyav_read]
    elif _BACKEND == "decord":
        readers = [_decord_read]
    else:
        readers = [_decord_read, _pyav_read]
    errors = []
    width_bug = False
    with quiet_decoders():
        for reader in readers:
            try:
                return reader(path, select)
            except (NameError, AttributeError, AssertionError):  # our bugs, not the file's
                raise
            except ImportError as exc:
                errors.append(f"{reader.__name__.strip('_').split('_')[0]} not installed ({exc})")
            except Exception as exc:  # noqa: BLE001  (decoders raise many types; report them all)
                width_bug = width_bug or isinstance(exc, DecordWidthBug)
                errors.append(f"{reader.__name__.strip('_').split('_')[0]}: {_reason(exc)}")
    if width_bug and len(errors) == 1:
        raise VideoError(f"cannot decode {path} with FSAR_BENCH_DECODER=decord ({errors[0]})",
                         "unset FSAR_BENCH_DECODER (auto falls back to PyAV) or set it to pyav")
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
