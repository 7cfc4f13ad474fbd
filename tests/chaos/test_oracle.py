"""The oracle itself: it accepts exactly what the workers would leave outside, and flags every difference."""

from __future__ import annotations

import pytest

from services.workers.jira.adf import document, summary
from services.workers.records import comment_tag, note_tag
from services.workers.slack.blocks import reply_text, root_message
from services.workers.zendesk.api import subject
from tests.chaos.fakes import ChaosJira, ChaosSlack, ChaosZendesk, Vendors
from tests.chaos.oracle import Truth, check_jira, check_slack, check_zendesk, compare
from tests.fakes.jira import Issue
from tests.fakes.slack import Message
from tests.fakes.zendesk import Ticket

TRUTH = Truth(
    id=7,
    message="db down",
    status="resolved",
    acknowledged="yes",
    comments=("looking", "fixed <now>"),
    deleted=False,
)


def outside(truth: Truth, *, notes: tuple[str, ...] = ("acknowledged", "resolved")) -> Vendors:
    """What the workers leave outside for `truth`: comments in order, interleaved with notes."""
    vendors = Vendors(ChaosJira(), ChaosSlack(), ChaosZendesk())
    posts = [(truth.comments[0], comment_tag(truth.id, 1))]
    posts += [(f"Incident {kind}.", note_tag(truth.id, 3 + n, kind)) for n, kind in enumerate(notes)]
    posts += [(text, comment_tag(truth.id, n + 2)) for n, text in enumerate(truth.comments[1:])]
    done = truth.deleted or truth.status == "resolved"
    issue = Issue("10001", "OPS-1", summary(truth.message, truth.id), None, [f"incident-{truth.id}"], "Task")
    issue.status = "Done" if done else "To Do"
    issue.comments = [{"id": str(n), "body": document(text, tag)} for n, (text, tag) in enumerate(posts)]
    vendors.jira.issues[issue.key] = issue
    ticket = Ticket(101, subject(truth.snapshot()), f"incident-{truth.id}", [])
    ticket.status = "closed" if truth.deleted else "solved" if done else "open"
    ticket.comments = [{"id": 0, "body": truth.message}]
    ticket.comments += [{"id": n + 1, "body": f"{text}\n\n{tag}"} for n, (text, tag) in enumerate(posts)]
    vendors.zendesk.tickets[ticket.id] = ticket
    text, blocks = root_message(truth.snapshot(), deleted=truth.deleted)
    metadata = {"event_type": "incident", "event_payload": {"incident_id": str(truth.id)}}
    vendors.slack.messages.append(Message("1.000001", text, blocks, metadata))
    for n, (body, tag) in enumerate(posts):
        vendors.slack.messages.append(Message(f"1.{n + 2:06d}", reply_text(body, tag), thread_ts="1.000001"))
    return vendors


def test_what_the_workers_leave_outside_converges() -> None:
    findings = compare(outside(TRUTH), {TRUTH.id: TRUTH})
    assert [f.problems for f in findings] == [[], [], []]


def test_a_deleted_incident_with_nothing_outside_converges() -> None:
    deleted = Truth(id=8, message="m", status="unresolved", acknowledged="no", comments=(), deleted=True)
    findings = compare(Vendors(ChaosJira(), ChaosSlack(), ChaosZendesk()), {8: deleted})
    assert all(f.converged for f in findings)


def test_an_unresolved_incident_with_nothing_outside_is_lost_everywhere() -> None:
    findings = compare(Vendors(ChaosJira(), ChaosSlack(), ChaosZendesk()), {TRUTH.id: TRUTH})
    assert [(f.lost, f.duplicates) for f in findings] == [(1, 0)] * 3


def test_a_comment_posted_twice_is_a_duplicate_and_a_note_twice_too() -> None:
    vendors = outside(TRUTH)
    issue = vendors.jira.issues["OPS-1"]
    issue.comments.append(issue.comments[0])
    issue.comments.append(issue.comments[1])
    finding = check_jira(vendors, TRUTH)
    assert (finding.duplicates, finding.lost) == (2, 0)


def test_missing_stale_and_misordered_comments_are_lost() -> None:
    vendors = outside(TRUTH)
    replies = [m for m in vendors.slack.messages if m.thread_ts]
    replies[-1].text = reply_text("something else", comment_tag(TRUTH.id, 2))
    assert check_slack(vendors, TRUTH).lost == 1
    vendors.zendesk.tickets[101].comments.pop()
    assert check_zendesk(vendors, TRUTH).lost == 1
    comments = vendors.jira.issues["OPS-1"].comments
    comments[0], comments[-1] = comments[-1], comments[0]
    assert check_jira(vendors, TRUTH).lost == 1


@pytest.mark.parametrize(
    ("vendor", "change"),
    [
        ("jira", lambda v: setattr(v.jira.issues["OPS-1"], "status", "To Do")),
        ("jira", lambda v: setattr(v.jira.issues["OPS-1"], "summary", "Incident 7: old")),
        ("zendesk", lambda v: setattr(v.zendesk.tickets[101], "status", "open")),
        ("zendesk", lambda v: setattr(v.zendesk.tickets[101], "subject", "Incident 7: old")),
        ("slack", lambda v: setattr(v.slack.messages[0], "text", "Incident #7: db down (Status: unresolved)")),
    ],
)
def test_a_stale_state_is_lost(vendor: str, change: object) -> None:
    vendors = outside(TRUTH)
    assert callable(change)
    change(vendors)
    check = {"jira": check_jira, "slack": check_slack, "zendesk": check_zendesk}[vendor]
    assert check(vendors, TRUTH).lost == 1


def test_two_objects_for_one_incident_are_a_duplicate() -> None:
    vendors = outside(TRUTH)
    vendors.zendesk.tickets[102] = Ticket(102, "x", "incident-7", [])
    assert check_zendesk(vendors, TRUTH).duplicates == 1


def test_a_deleted_incident_must_show_closed() -> None:
    deleted = Truth(**{**TRUTH.__dict__, "status": "unresolved", "deleted": True})
    vendors = outside(deleted, notes=("acknowledged", "deleted"))
    assert all(f.converged for f in compare(vendors, {deleted.id: deleted}))
    vendors.zendesk.tickets[101].status = "open"
    assert check_zendesk(vendors, deleted).lost == 1
    jira_without_note = outside(deleted, notes=("acknowledged",))
    assert check_jira(jira_without_note, deleted).lost == 1


def test_notes_out_of_version_order_mean_an_older_snapshot_was_applied_after_a_newer_one() -> None:
    vendors = outside(TRUTH, notes=("acknowledged", "resolved"))
    replies = [m for m in vendors.slack.messages if m.thread_ts]
    replies[1].text, replies[2].text = replies[2].text, replies[1].text
    finding = check_slack(vendors, TRUTH)
    assert (finding.lost, finding.duplicates, finding.converged) == (0, 0, False)
