"""Keep decoder log lines off the terminal (#15): a bad file gets our one-line error, not ffmpeg
and decord chatter printed before it.

FFmpeg inside PyAV logs nothing (PyAV's default level None, reasserted by `silence_pyav`) and
decord's FFmpeg is set to QUIET (`silence_decord`). decord's own C++ messages (`[09:13:10]
/project/src/video/video_reader.cc:86: ERROR opening: x.mp4, ...`) are written straight to file
descriptor 2, which no logging API reaches; so while a decoder call runs, fd 2 is a pipe whose
lines are forwarded live to the real stderr, minus the decoders' lines. Python's own output
(progress bars, warnings, tracebacks) passes through unchanged; our errors are exceptions and
are printed after the call anyway. `FSAR_BENCH_DECODER_LOGS=1` turns all of this off (debugging).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from collections.abc import Iterator

# `[hh:mm:ss] file.cc:NN: ` (decord's dmlc logging) and `[codec @ 0x55...] ` (FFmpeg's av_log)
DECODER_LINE = re.compile(rb"^(\[\d\d:\d\d:\d\d\] \S+:\d+: |\[[\w,./ -]+ @ (0x)?[0-9a-fA-F]+\] )")
SILENCE = os.environ.get("FSAR_BENCH_DECODER_LOGS", "") in ("", "0")
_MAX_HELD = 4096  # a partial line longer than this is not held back for filtering


def silence_decord(decord_module) -> None:
    """FFmpeg inside decord logs nothing (idempotent, cheap)."""
    if SILENCE:
        decord_module.logging.set_level(decord_module.logging.QUIET)


def silence_pyav(av_module) -> None:
    """FFmpeg inside PyAV logs nothing (its default; reasserted in case something raised the level)."""
    if SILENCE:
        av_module.logging.set_level(None)


def _keep(line: bytes) -> bool:
    return not DECODER_LINE.match(line.lstrip(b"\r"))


def _forward(buf: bytes, out: int, final: bool) -> bytes:
    """Write the lines of `buf` that are not decoder lines; return the partial line still held."""
    *lines, rest = buf.split(b"\n")
    kept = b"".join(line + b"\n" for line in lines if _keep(line))
    # a partial line that may become a decoder line waits for its newline; anything else
    # (a progress bar redrawn with \r, a prompt) goes out at once
    if rest and (final or not rest.startswith(b"[") or len(rest) > _MAX_HELD):
        if _keep(rest):
            kept += rest
        rest = b""
    while kept:
        try:
            kept = kept[os.write(out, kept):]
        except OSError:
            break
    return rest


def _pump(read_fd: int, out: int) -> None:
    held = b""
    try:
        while True:
            chunk = os.read(read_fd, 65536)
            if not chunk:
                break
            held = _forward(held + chunk, out, final=False)
        _forward(held, out, final=True)
    finally:
        os.close(read_fd)
        os.close(out)


class _Filter:
    """fd 2 through the filter while at least one decoder call runs (reference-counted, thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.depth = 0
        self.saved: int | None = None
        self.thread: threading.Thread | None = None
        self.join_timeout = 2.0

    def after_fork_in_child(self) -> None:
        """A forked child (a data-loader worker) gets its own stderr back and starts from zero."""
        if self.saved is not None:
            with contextlib.suppress(OSError):
                os.dup2(self.saved, 2)
                os.close(self.saved)
        self.lock = threading.Lock()
        self.depth, self.saved, self.thread = 0, None, None

    def enter(self) -> None:
        with self.lock:
            self.depth += 1
            if self.depth > 1 or self.saved is not None:
                return
            try:
                with contextlib.suppress(Exception):
                    sys.stderr.flush()
                read_fd, write_fd = os.pipe()
                saved = os.dup(2)
                out = os.dup(saved)
                os.dup2(write_fd, 2)
                os.close(write_fd)
            except OSError:  # no usable fd 2 (a daemon): nothing to filter
                return
            self.saved = saved
            self.thread = threading.Thread(target=_pump, args=(read_fd, out), name="fsar-decoder-log-filter",
                                           daemon=True)
            self.thread.start()

    def exit(self) -> None:
        with self.lock:
            self.depth = max(0, self.depth - 1)
            if self.depth or self.saved is None:
                return
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(self.saved, 2)  # closes the pipe's write end: the pump drains it and stops
            os.close(self.saved)
            self.saved = None
            thread, self.thread = self.thread, None
        if thread is not None:
            # a process started meanwhile may hold the pipe open; the daemon pump then ends with it,
            # and later calls no longer wait for their pump
            thread.join(timeout=self.join_timeout)
            if thread.is_alive():
                self.join_timeout = 0.05


_filter = _Filter()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_filter.after_fork_in_child)


@contextlib.contextmanager
def quiet_decoders() -> Iterator[None]:
    """Drop decoder log lines written to fd 2 during the block; everything else still prints."""
    if not SILENCE:
        yield
        return
    _filter.enter()
    try:
        yield
    finally:
        _filter.exit()
