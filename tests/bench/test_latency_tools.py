"""The latency tools' own parts: the disk's fsync probe and reading the event handler's confirmations."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from scripts.bench.fsync import disk_fsyncs
from scripts.bench.latency import confirmed_at


def test_the_fsync_probe_counts_fsyncs_per_thread_and_leaves_no_file(tmp_path: Path) -> None:
    result = disk_fsyncs(tmp_path, threads=2, seconds=0.2)
    assert result["threads"] == 2
    assert result["fsyncs_per_s"] > 0
    assert result["p50_ms"] is not None and result["p50_ms"] <= result["max_ms"]
    assert list(tmp_path.iterdir()) == []


def test_confirmations_are_read_from_event_stored_lines_only(tmp_path: Path) -> None:
    log = tmp_path / "eventhandler.log"
    log.write_text(
        '{"event":"event stored","event_id":"a","timestamp":"2026-12-05T08:00:00.250000Z","level":"info"}\n'
        '{"event":"publish incomplete","event_id":"b","timestamp":"2026-12-05T08:00:01Z"}\n'
        '{"event":"event stored","event_id":"c", cut off\n'
        '{"event":"event stored","event_id":"a","timestamp":"2026-12-05T08:00:09Z"}\n'
    )
    found = confirmed_at(log)
    assert found == {"a": datetime.fromisoformat("2026-12-05T08:00:00.250000Z").timestamp()}
