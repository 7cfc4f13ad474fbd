"""The incident's rules and the events each change records: plain objects, no fixtures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.api.incidents.domain import (
    MAX_MESSAGE_LENGTH,
    Acknowledged,
    Incident,
    IncidentDeleted,
    IncidentUpdate,
    InvalidInput,
    Status,
)
from shared.events import EventType

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def types(incident: Incident) -> list[str]:
    return [c.type.value for c in incident.changes]


def test_open_records_created_at_version_1() -> None:
    incident = Incident.open("disk full", T0)
    assert (incident.status, incident.acknowledged, incident.comments) == (Status.UNRESOLVED, Acknowledged.NO, [])
    assert incident.version == 1
    assert types(incident) == ["created"]
    assert incident.changes[0].message == "disk full"


@pytest.mark.parametrize("message", ["", "   ", "\n\t", "x" * (MAX_MESSAGE_LENGTH + 1)])
def test_open_refuses_empty_or_huge_messages(message: str) -> None:
    with pytest.raises(InvalidInput):
        Incident.open(message, T0)


def test_each_transition_records_its_event_and_repeats_are_no_ops() -> None:
    incident = Incident.open("m", T0)
    incident.acknowledge(T0)
    incident.acknowledge(T0)
    incident.unacknowledge(T0)
    incident.unacknowledge(T0)
    incident.resolve(T0)
    incident.resolve(T0)
    incident.reopen(T0)
    incident.reopen(T0)
    incident.edit_message("m", T0)
    incident.edit_message("n", T0)
    incident.comment("c", T0)
    assert types(incident) == [
        "created",
        "acknowledged",
        "unacknowledged",
        "resolved",
        "reopened",
        "updated",
        "commented",
    ]
    assert [c.version for c in incident.changes] == list(range(1, 8))
    assert incident.changes[-1].comment == "c"


def test_comment_refuses_empty_text() -> None:
    incident = Incident.open("m", T0)
    with pytest.raises(InvalidInput):
        incident.comment("  ", T0)
    assert incident.version == 1


def test_deleted_incident_accepts_nothing() -> None:
    incident = Incident.open("m", T0)
    incident.delete(T0)
    assert types(incident)[-1] == "deleted"
    for action in (incident.acknowledge, incident.resolve, incident.delete):
        with pytest.raises(IncidentDeleted):
            action(T0)
    with pytest.raises(IncidentDeleted):
        incident.comment("late", T0)


def test_apply_orders_events_message_ack_comments_status() -> None:
    incident = Incident.open("m", T0)
    incident.apply(
        IncidentUpdate(message="n", acknowledged=Acknowledged.YES, status=Status.RESOLVED, comments=("a", "b")), T0
    )
    assert types(incident) == ["created", "updated", "acknowledged", "commented", "commented", "resolved"]
    # Each event carries the state right after its own change.
    assert incident.changes[2].status is Status.UNRESOLVED
    assert incident.changes[3].comments == ("a",)
    assert incident.changes[4].comments == ("a", "b")
    assert incident.changes[5].status is Status.RESOLVED


def test_apply_validates_everything_before_changing_anything() -> None:
    incident = Incident.open("m", T0)
    with pytest.raises(InvalidInput):
        incident.apply(IncidentUpdate(acknowledged=Acknowledged.YES, comments=("ok", "")), T0)
    assert incident.acknowledged is Acknowledged.NO
    assert incident.version == 1
    with pytest.raises(InvalidInput):
        incident.apply(IncidentUpdate(), T0)


ACTIONS = st.sampled_from(["ack", "unack", "resolve", "reopen", "comment", "edit"])
TEXT = st.text(min_size=1, max_size=20).filter(lambda s: s.strip())


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(ACTIONS, TEXT), max_size=40))
def test_any_sequence_keeps_versions_contiguous_and_state_consistent(steps: list[tuple[str, str]]) -> None:
    incident = Incident.open("start", T0)
    now = T0
    expected_comments: list[str] = []
    for action, text in steps:
        now += timedelta(seconds=1)
        before = (incident.status, incident.acknowledged, incident.message, len(incident.comments))
        count = len(incident.changes)
        if action == "ack":
            incident.acknowledge(now)
        elif action == "unack":
            incident.unacknowledge(now)
        elif action == "resolve":
            incident.resolve(now)
        elif action == "reopen":
            incident.reopen(now)
        elif action == "comment":
            incident.comment(text, now)
            expected_comments.append(text)
        else:
            incident.edit_message(text, now)
        after = (incident.status, incident.acknowledged, incident.message, len(incident.comments))
        # A change records exactly one event; no change records none.
        assert len(incident.changes) - count == (0 if after == before else 1)
    assert [c.version for c in incident.changes] == list(range(1, incident.version + 1))
    assert incident.comments == expected_comments
    last = incident.changes[-1]
    assert (last.status, last.acknowledged, last.message, list(last.comments)) == (
        incident.status,
        incident.acknowledged,
        incident.message,
        incident.comments,
    )
    commented = [c.comment for c in incident.changes if c.type is EventType.COMMENTED]
    assert commented == expected_comments


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(st.none(), TEXT),
    st.one_of(st.none(), st.sampled_from(list(Acknowledged))),
    st.one_of(st.none(), st.sampled_from(list(Status))),
    st.lists(TEXT, max_size=5),
)
def test_apply_emits_events_in_the_fixed_order(
    message: str | None, ack: Acknowledged | None, status: Status | None, comments: list[str]
) -> None:
    update = IncidentUpdate(message=message, acknowledged=ack, status=status, comments=tuple(comments))
    incident = Incident.open("start", T0)
    if update.message is None and ack is None and status is None and not comments:
        with pytest.raises(InvalidInput):
            incident.apply(update, T0)
        return
    incident.apply(update, T0)
    order = ["updated", "acknowledged", "unacknowledged", "commented", "resolved", "reopened"]
    emitted = types(incident)[1:]
    assert emitted == sorted(emitted, key=order.index)
    assert emitted.count("commented") == len(comments)
