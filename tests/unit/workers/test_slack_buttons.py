"""The Slack root message's buttons: which show in which state, the version they carry, and a digest that
ignores that version (a comment does not redraw the message, and its buttons stay valid)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from services.workers.records import IncidentRecord
from services.workers.slack.blocks import root_message
from services.workers.slack.settings import SlackSettings
from services.workers.slack.worker import SlackWorker
from shared.events import IncidentSnapshot
from tests.fakes.sender import HandlerSender, answer

NOW = datetime(2026, 12, 5, tzinfo=UTC)


def snapshot(version: int, status: str = "unresolved", acknowledged: str = "no", comments: int = 0) -> IncidentSnapshot:
    return IncidentSnapshot(
        id=7,
        status=status,
        acknowledged=acknowledged,
        message="db down",
        comments=[f"c{i}" for i in range(comments)],
        version=version,
        created_at=NOW,
        updated_at=NOW,
    )


def buttons(blocks: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    found = []
    for block in blocks:
        if block["type"] == "actions":
            found += [(e["action_id"], e["text"]["text"], e["value"]) for e in block["elements"]]
    return found


def test_open_acknowledged_and_resolved_incidents_show_their_buttons() -> None:
    _, blocks = root_message(snapshot(1), deleted=False, interactive=True)
    assert buttons(blocks) == [("acknowledge", "Acknowledge", "7:1"), ("resolve", "Resolve", "7:1")]
    _, blocks = root_message(snapshot(2, acknowledged="yes"), deleted=False, interactive=True)
    assert buttons(blocks) == [("resolve", "Resolve", "7:2")]
    _, blocks = root_message(snapshot(3, status="resolved"), deleted=False, interactive=True)
    assert buttons(blocks) == [("reopen", "Reopen", "7:3")]


def test_no_buttons_without_the_signing_secret_or_once_deleted() -> None:
    assert buttons(root_message(snapshot(1), deleted=False)[1]) == []
    assert buttons(root_message(snapshot(4), deleted=True, interactive=True)[1]) == []


def test_who_acted_shows_in_the_blocks_but_not_the_fallback_text() -> None:
    text, blocks = root_message(snapshot(2, acknowledged="yes"), deleted=False, acted="acknowledged by slack:alice")
    assert "slack:alice" in str(blocks) and "slack:alice" not in text


def test_a_comment_changes_nothing_shown_so_the_message_keeps_its_older_buttons() -> None:
    worker = SlackWorker(SlackSettings(interactive=True), HandlerSender(lambda _: answer(200, {"ok": True})))
    record = IncidentRecord(incident_id=7, acted="acknowledged by slack:alice")
    before = worker.shown(snapshot(2, acknowledged="yes"), record)
    assert worker.shown(snapshot(3, acknowledged="yes", comments=1), record) == before
    assert worker.shown(snapshot(4, acknowledged="yes", status="resolved", comments=1), record) != before
