"""Log lines written a batch at a time: info waits at most the flush interval, a warning goes at once, in order."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
import time

from shared.logwriter import LineHandler, LineWriter


class Stream(io.BytesIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.writes += 1
        return super().write(data)


def _lines(stream: Stream) -> list[bytes]:
    return stream.getvalue().splitlines()


def _wait_for(condition: object, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_info_lines_gather_and_are_written_together_within_the_interval() -> None:
    stream = Stream()
    writer = LineWriter(stream, flush_seconds=0.2)
    started = time.monotonic()
    for n in range(50):
        writer.info(b"line %d" % n)
    assert _lines(stream) == []  # nothing written yet: one write for all of them is the point
    _wait_for(lambda: len(_lines(stream)) == 50)
    assert time.monotonic() - started < 2.0
    assert stream.writes == 1
    assert _lines(stream) == [b"line %d" % n for n in range(50)]


def test_a_warning_is_written_at_once_after_the_lines_before_it() -> None:
    stream = Stream()
    writer = LineWriter(stream, flush_seconds=60)
    writer.info(b"first")
    writer.debug(b"second")
    writer.warning(b"trouble")
    assert _lines(stream) == [b"first", b"second", b"trouble"]
    writer.error(b"worse")
    assert _lines(stream)[-1] == b"worse"


def test_a_full_buffer_is_written_without_waiting() -> None:
    stream = Stream()
    writer = LineWriter(stream, flush_seconds=60, max_bytes=100)
    for n in range(10):
        writer.info(b"%020d" % n)
    assert len(_lines(stream)) >= 8  # written each time 100 bytes had gathered
    writer.flush()
    assert _lines(stream) == [b"%020d" % n for n in range(10)]


def test_standard_library_records_keep_their_place_among_the_lines() -> None:
    stream = Stream()
    writer = LineWriter(stream, flush_seconds=60)
    logger = logging.getLogger("test.logwriter")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = LineHandler(writer)
    logger.addHandler(handler)
    try:
        writer.info(b"ours")
        logger.info("theirs, info")
        assert _lines(stream) == []
        logger.warning("theirs, warning")
    finally:
        logger.removeHandler(handler)
    assert _lines(stream) == [b"ours", b"theirs, info", b"theirs, warning"]


def test_what_gathered_is_written_when_the_process_exits() -> None:
    code = (
        "import structlog\n"
        "from shared.logging import configure_logging\n"
        "configure_logging('exiting', json=True)\n"
        "structlog.get_logger().info('last words')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60, check=True)
    assert b'"event":"last words"' in done.stderr
