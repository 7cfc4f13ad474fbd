"""Where a service's JSON log lines go: stderr, written a batch at a time.

A service logs a line per request or event, and a write(2) per line cost more CPU than rendering it. Debug and
info lines gather in memory and are written together, at most `FLUSH_SECONDS` after the first of them (or once
`MAX_BYTES` have gathered). A warning or worse is written at once, after the lines gathered before it, so the
order holds. At exit what has gathered is written; a SIGKILL loses at most the last `FLUSH_SECONDS` of info lines.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from typing import BinaryIO

FLUSH_SECONDS = 0.2
MAX_BYTES = 64 * 1024


class LineWriter:
    """A structlog logger (its methods are the levels) writing bytes lines to one binary stream."""

    def __init__(self, stream: BinaryIO, *, flush_seconds: float = FLUSH_SECONDS, max_bytes: int = MAX_BYTES) -> None:
        self.stream = stream
        self.flush_seconds = flush_seconds
        self.max_bytes = max_bytes
        self._lines: list[bytes] = []
        self._size = 0
        self._lock = threading.Lock()
        self._gathering = threading.Event()
        self._flusher: threading.Thread | None = None
        atexit.register(self.flush)

    def gather(self, line: bytes) -> None:
        with self._lock:
            self._lines.append(line + b"\n")
            self._size += len(line) + 1
            if self._size < self.max_bytes:
                if len(self._lines) == 1:
                    self._wake_flusher()
                return
            self._write_gathered()

    def write_now(self, line: bytes) -> None:
        with self._lock:
            self._lines.append(line + b"\n")
            self._write_gathered()

    def flush(self) -> None:
        with self._lock:
            self._write_gathered()

    debug = info = msg = log = gather
    warn = warning = error = err = critical = exception = fatal = failure = write_now

    def _write_gathered(self) -> None:
        if not self._lines:
            return
        lines, self._lines, self._size = self._lines, [], 0
        try:
            self.stream.write(b"".join(lines))
            self.stream.flush()
        except (OSError, ValueError):
            pass  # stderr closed or gone (a broken pipe): nowhere left to log to

    def _wake_flusher(self) -> None:
        if self._flusher is None:
            self._flusher = threading.Thread(target=self._flush_soon, name="log-flusher", daemon=True)
            self._flusher.start()
        self._gathering.set()

    def _flush_soon(self) -> None:
        while True:
            self._gathering.wait()
            self._gathering.clear()
            time.sleep(self.flush_seconds)
            self.flush()


class LineHandler(logging.Handler):
    """The standard library's records (warnings and worse) through the same writer, in the same order."""

    def __init__(self, writer: LineWriter) -> None:
        super().__init__()
        self.writer = writer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record).encode()
        except Exception:
            self.handleError(record)
            return
        if record.levelno >= logging.WARNING:
            self.writer.write_now(line)
        else:
            self.writer.gather(line)
