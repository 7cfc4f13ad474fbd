"""The JSON log line: secrets redacted wherever they sit, ordinary lines rendered as they are."""

from __future__ import annotations

import asyncio
import io
import logging
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
import structlog

from shared import logcontext
from shared.logging import REDACTED, configure_logging, flush_logs


@pytest.fixture
def lines(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.BytesIO]:
    """configure_logging as a service calls it, with stderr going to a buffer."""
    buffer = io.BytesIO()
    before, handlers = structlog.get_config(), logging.getLogger().handlers[:]
    stderr = io.TextIOWrapper(buffer, write_through=True)  # kept: when collected, it closes the buffer
    monkeypatch.setattr(sys, "stderr", stderr)
    configure_logging("test", json=True)
    yield buffer
    stderr.detach()
    structlog.configure(**before)
    logcontext.clear()
    logging.getLogger().handlers[:] = handlers


def _read(buffer: io.BytesIO) -> list[dict[str, Any]]:
    flush_logs()
    return [msgspec.json.decode(line) for line in buffer.getvalue().splitlines()]


def test_an_ordinary_line_keeps_every_field(lines: io.BytesIO) -> None:
    structlog.get_logger().info("event applied", delay_ms=3.5, body={"fields": {"summary": "disk full"}})
    [line] = _read(lines)
    assert line["event"] == "event applied"
    assert line["delay_ms"] == 3.5
    assert line["body"] == {"fields": {"summary": "disk full"}}
    assert line["service"] == "test"
    assert line["level"] == "info"
    assert "timestamp" in line


def test_bound_fields_join_each_line_and_leave_with_their_block(lines: io.BytesIO) -> None:
    log = structlog.get_logger()
    logcontext.bind(request_id="r-1")
    with logcontext.bound(incident_id=7, request_id="r-2"):
        log.info("inside", incident_id=8)  # the line's own field wins
    log.info("after")
    logcontext.unbind("request_id")
    log.info("unbound")
    inside, after, unbound = _read(lines)
    assert (inside["incident_id"], inside["request_id"], inside["service"]) == (8, "r-2", "test")
    assert after["request_id"] == "r-1" and "incident_id" not in after
    assert "request_id" not in unbound and unbound["service"] == "test"
    assert list(inside)[:2] == ["incident_id", "event"]  # the line's own fields first, then the bound ones


async def test_a_task_binds_for_itself_and_the_tasks_it_starts() -> None:
    async def child() -> dict[str, Any]:
        return logcontext.bound_fields()

    async def request(number: int) -> tuple[dict[str, Any], dict[str, Any]]:
        logcontext.bind(request_id=f"r-{number}")
        inherited = await asyncio.create_task(child())
        return logcontext.bound_fields(), inherited

    before = logcontext.bound_fields()
    results = await asyncio.gather(request(1), request(2))
    assert results == [({**before, "request_id": "r-1"},) * 2, ({**before, "request_id": "r-2"},) * 2]
    assert logcontext.bound_fields() == before  # a task's binding never reaches the one that started it


def test_the_timestamp_is_iso_utc_with_microseconds(lines: io.BytesIO) -> None:
    before = datetime.now(UTC)
    structlog.get_logger().info("one")
    structlog.get_logger().info("two")
    after = datetime.now(UTC)
    stamps = [line["timestamp"] for line in _read(lines)]
    for stamp in stamps:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", stamp)
        assert before - timedelta(milliseconds=1) <= datetime.fromisoformat(stamp) <= after + timedelta(milliseconds=1)
    assert stamps[0] <= stamps[1]


def test_a_level_is_named_as_the_standard_library_names_it(lines: io.BytesIO) -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        structlog.get_logger().exception("failed")
    structlog.get_logger().warning("careful")
    failed, careful = _read(lines)
    assert (failed["level"], careful["level"]) == ("error", "warning")
    assert "RuntimeError: boom" in failed["exception"]


def test_secret_keys_are_redacted_at_any_depth(lines: io.BytesIO) -> None:
    structlog.get_logger().info(
        "calling out",
        api_token="t0p",
        json={"user": {"Password": "hunter2", "name": "ann"}, "items": [{"client_secret": "s3"}]},
    )
    [line] = _read(lines)
    assert line["api_token"] == REDACTED
    assert line["json"] == {"user": {"Password": REDACTED, "name": "ann"}, "items": [{"client_secret": REDACTED}]}


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "Basic"])
def test_credentials_in_text_are_redacted(lines: io.BytesIO, scheme: str) -> None:
    structlog.get_logger().warning("vendor said", answer=f"header was {scheme} abc.DEF-123 and more")
    [line] = _read(lines)
    assert line["answer"] == f"header was {scheme} {REDACTED} and more"


def test_a_traceback_is_redacted_too(lines: io.BytesIO) -> None:
    try:
        raise RuntimeError("refused: Authorization: Bearer abc123")
    except RuntimeError:
        structlog.get_logger().exception("unexpected error")
    [line] = _read(lines)
    assert "abc123" not in line["exception"]
    assert f"Bearer {REDACTED}" in line["exception"]


@pytest.mark.parametrize(
    "secret", ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "xoxb-1234-5678-AbCdEf", "xoxp-99-abc", "xoxe-1-x"]
)
def test_signing_secrets_and_slack_tokens_are_redacted_by_their_shape(lines: io.BytesIO, secret: str) -> None:
    structlog.get_logger().warning("vendor said", answer=f"not_authed for {secret}, retrying", items=[secret])
    [line] = _read(lines)
    assert secret not in str(line)
    assert line["answer"] == f"not_authed for {REDACTED}, retrying"
    assert line["items"] == [REDACTED]


class _Credentials(msgspec.Struct):
    user: str
    password: str
    note: str


class _Call(msgspec.Struct):
    host: str
    auth: _Credentials
    headers: dict[str, str]


def test_secrets_inside_structs_are_redacted(lines: io.BytesIO) -> None:
    call = _Call(
        host="hooks.example.com",
        auth=_Credentials(user="ann", password="hunter2", note="signed with whsec_abc123"),
        headers={"Authorization": "Bearer t0k3n", "accept": "application/json"},
    )
    structlog.get_logger().info("calling out", call=call)
    [line] = _read(lines)
    assert "hunter2" not in str(line) and "t0k3n" not in str(line) and "whsec_abc123" not in str(line)
    assert line["call"]["host"] == "hooks.example.com"
    assert line["call"]["auth"] == {"user": "ann", "password": REDACTED, "note": f"signed with {REDACTED}"}
    assert line["call"]["headers"] == {"Authorization": REDACTED, "accept": "application/json"}


@pytest.mark.parametrize(("setting", "coloured"), [("", False), ("0", False), ("1", True)])
def test_console_lines_are_coloured_only_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch, setting: str, coloured: bool
) -> None:
    """Console format with stderr a pipe: no escape codes, unless LOG_COLOUR=1 says the reader is a terminal."""
    buffer = io.BytesIO()
    before, handlers = structlog.get_config(), logging.getLogger().handlers[:]
    monkeypatch.setattr(sys, "stderr", io.TextIOWrapper(buffer, write_through=True))
    monkeypatch.setenv("LOG_COLOUR", setting)
    try:
        configure_logging("test", json=False)
        structlog.get_logger("t").warning("disk full", host="db-7")
        logging.getLogger("stdlib").warning("from the standard library")
        flush_logs()
    finally:
        structlog.configure(**before)
        logcontext.clear()
        logging.getLogger().handlers[:] = handlers
    text = buffer.getvalue().decode()
    assert "disk full" in text and "from the standard library" in text
    assert ("\x1b[" in text) is coloured
