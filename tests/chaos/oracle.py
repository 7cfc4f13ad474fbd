"""The final truth from the database, what each outside system should hold for it, and the differences.

What the workers write outside (services/workers): one object per incident found by its tag; each incident
comment is posted once, in order, carrying `[incident-<id> #<position>]`; state changes may add notes
carrying `[incident-<id> v<version> <kind>]` (Jira: ack/unack/deleted; Zendesk: also message edits;
Slack: every kind). Notes are not comments: they are filtered out, but a note posted twice is a duplicate.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sized
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa

from services.api.storage.db import Db
from services.api.storage.tables import incident_comments, incident_events, incidents
from services.workers.jira.adf import summary
from services.workers.slack.blocks import escape, root_message
from services.workers.zendesk.api import subject
from shared.events import IncidentSnapshot
from tests.chaos.fakes import Vendors

COMMENT_TAG = re.compile(r"\[incident-(\d+) #(\d+)\]")
NOTE_TAG = re.compile(r"\[incident-(\d+) v(\d+) (\w+)\]")


@dataclass(frozen=True)
class Truth:
    """One incident as the database holds it at the end."""

    id: int
    message: str
    status: str
    acknowledged: str
    comments: tuple[str, ...]
    deleted: bool

    def snapshot(self) -> IncidentSnapshot:
        now = datetime.now(UTC)
        return IncidentSnapshot(
            id=self.id,
            status=self.status,
            acknowledged=self.acknowledged,
            message=self.message,
            comments=list(self.comments),
            version=1,
            created_at=now,
            updated_at=now,
        )


def unacknowledged_losses(created: list[int], comments: list[tuple[int, str]], truth: dict[int, Truth]) -> list[str]:
    """What the API acknowledged (a 200) and the database no longer holds: creates and comments."""
    problems = [
        f"incident {incident} was created (200) but is not in the database"
        for incident in created
        if incident not in truth
    ]
    for incident, comment in comments:
        if incident not in truth or comment not in truth[incident].comments:
            problems.append(
                f"incident {incident}: comment {comment!r} was acknowledged (200) but is not in the database"
            )
    return problems


async def read_truth(database_url: str) -> tuple[dict[int, Truth], int]:
    """Every incident ever created (deleted ones too), and the number of rows in the event log."""
    db = Db(database_url)
    await db.connect()
    try:
        rows = await db.database.fetch_all(sa.select(incidents).order_by(incidents.c.id))
        texts = await db.database.fetch_all(
            sa.select(incident_comments.c.incident_id, incident_comments.c.body).order_by(
                incident_comments.c.incident_id, incident_comments.c.position
            )
        )
        events = int(await db.database.fetch_val(sa.select(sa.func.count()).select_from(incident_events)) or 0)
    finally:
        await db.disconnect()
    comments: dict[int, list[str]] = {}
    for text in texts:
        comments.setdefault(int(text["incident_id"]), []).append(str(text["body"]))
    truth = {}
    for row in rows:
        incident = int(row["id"])
        truth[incident] = Truth(
            id=incident,
            message=str(row["message"]),
            status=str(row["status"]),
            acknowledged=str(row["acknowledged"]),
            comments=tuple(comments.get(incident, [])),
            deleted=row["deleted_at"] is not None,
        )
    return truth, events


@dataclass
class Finding:
    """The differences for one incident in one outside system."""

    vendor: str
    incident: int
    duplicates: int = 0
    lost: int = 0
    problems: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)
    """What the outside object shows (status, then posts), for the report when it diverged."""

    def dup(self, count: int, what: str) -> None:
        if count > 0:
            self.duplicates += count
            self.problems.append(f"{what} (+{count})")

    def missing(self, what: str, count: int = 1) -> None:
        self.lost += count
        self.problems.append(what)

    @property
    def converged(self) -> bool:
        return not self.problems


def check_posts(finding: Finding, truth: Truth, posts: list[str], comment_body: re.Pattern[str]) -> None:
    """Comments exactly once each and in order with the database's texts; no note twice."""
    positions: list[int] = []
    bodies: dict[int, str] = {}
    notes: Counter[str] = Counter()
    versions: list[int] = []
    for text in posts:
        if (tag := COMMENT_TAG.search(text)) is not None and int(tag.group(1)) == truth.id:
            position = int(tag.group(2))
            positions.append(position)
            match = comment_body.fullmatch(text)
            bodies.setdefault(position, match.group(1) if match else text)
        elif (note := NOTE_TAG.search(text)) is not None and int(note.group(1)) == truth.id:
            notes[note.group(0)] += 1
            versions.append(int(note.group(2)))
        else:
            finding.problems.append(f"post without a tag of this incident: {text[:80]!r}")
    counts = Counter(positions)
    twice = sorted(p for p, c in counts.items() if c > 1)
    finding.dup(sum(c - 1 for c in counts.values()), f"comments posted more than once: {twice[:10]}")
    noted = sorted(n for n, c in notes.items() if c > 1)
    finding.dup(sum(c - 1 for c in notes.values()), f"notes posted more than once: {noted[:5]}")
    expected = len(truth.comments)
    finding.dup(sum(c for p, c in counts.items() if p > expected), "comment that the incident does not have")
    missing = [p for p in range(1, expected + 1) if p not in counts]
    if missing:
        finding.missing(f"comments missing: {missing[:10]}", len(missing))
    first_seen = list(dict.fromkeys(positions))
    if first_seen != sorted(first_seen):
        finding.missing(f"comments out of order: {first_seen[:20]}")
    if versions != sorted(versions):
        # Each change's note carries the version it was applied at: a lower one after a higher one means an
        # older snapshot was applied after a newer one (per-incident order broken).
        finding.problems.append(f"notes out of version order: {versions}")
    for position, body in bodies.items():
        if position <= expected and body != truth.comments[position - 1]:
            finding.missing(f"comment #{position} reads {body[:60]!r}, not {truth.comments[position - 1][:60]!r}")


def one_found(finding: Finding, truth: Truth, found: Sized, kind: str, none: str) -> bool:
    """Whether the incident has its outside object; more than one counts as duplicates."""
    finding.dup(len(found) - 1, f"{kind} for one incident")
    if not found and not truth.deleted:  # deleted before the worker got to it: nothing is the right answer
        finding.missing(none)
    return bool(found)


def check_jira(vendors: Vendors, truth: Truth) -> Finding:
    finding = Finding("jira", truth.id)
    issues = vendors.jira.with_label(f"incident-{truth.id}")
    if not one_found(finding, truth, issues, "issues", "no issue"):
        return finding
    with vendors.jira.lock:
        issue = issues[0]
        texts = issue.comment_texts()
        status, title = issue.status, issue.summary
    finding.outside = [f"{issue.key} {status} {title!r}", *texts]
    check_posts(finding, truth, texts, re.compile(r"(.*)\n\[incident-\d+ #\d+\]", re.S))
    wanted = "Done" if truth.deleted or truth.status == "resolved" else "To Do"
    if status != wanted:
        finding.missing(f"status {status!r}, not {wanted!r}")
    deleted_notes = sum(1 for t in texts if (n := NOTE_TAG.search(t)) and n.group(3) == "deleted")
    if truth.deleted and not deleted_notes:
        finding.missing("deleted, but no deletion note")
    if title != summary(truth.message, truth.id):
        finding.missing(f"summary {title[:60]!r} is stale")
    return finding


def check_zendesk(vendors: Vendors, truth: Truth) -> Finding:
    finding = Finding("zendesk", truth.id)
    tickets = vendors.zendesk.for_incident(truth.id)
    if not one_found(finding, truth, tickets, "tickets", "no ticket"):
        return finding
    with vendors.zendesk.lock:
        ticket = min(tickets, key=lambda t: t.id)
        bodies = ticket.comment_bodies()[1:]  # the first is the description, made from the message
        status, title = ticket.status, ticket.subject
    finding.outside = [f"ticket {ticket.id} {status} {title!r}", *bodies]
    check_posts(finding, truth, bodies, re.compile(r"(.*)\n\n\[incident-\d+ #\d+\]", re.S))
    if truth.deleted:
        wanted: tuple[str, ...] = ("closed",)
    elif truth.status == "resolved":
        wanted = ("solved",)
    else:
        wanted = ("new", "open")  # a ticket nothing happened to since its creation is still new
    if status not in wanted:
        finding.missing(f"status {status!r}, not {'/'.join(wanted)}")
    if title != subject(truth.snapshot()):
        finding.missing(f"subject {title[:60]!r} is stale")
    return finding


def check_slack(vendors: Vendors, truth: Truth) -> Finding:
    finding = Finding("slack", truth.id)
    roots = vendors.slack.roots_for(truth.id)
    if not one_found(finding, truth, roots, "root messages", "no root message"):
        return finding
    root = roots[0]
    replies = vendors.slack.replies(root.ts)
    with vendors.slack.lock:
        shown = root.text
    finding.outside = [f"root {root.ts} {shown!r}", *replies]
    body = re.compile(r"(.*)\n\[incident-\d+ #\d+\]", re.S)
    escaped = Truth(**{**truth.__dict__, "comments": tuple(escape(c) for c in truth.comments)})
    check_posts(finding, escaped, replies, body)
    wanted, _ = root_message(truth.snapshot(), deleted=truth.deleted)
    if shown != wanted:
        finding.missing(f"root shows {shown[:120]!r}, not {wanted[:120]!r}")
    return finding


CHECKS = {"jira": check_jira, "slack": check_slack, "zendesk": check_zendesk}


def stray_objects(vendors: Vendors, truth: dict[int, Truth]) -> list[str]:
    """Outside objects for incidents the database does not have."""
    known = {f"incident-{i}" for i in truth}
    strays = []
    with vendors.jira.lock:
        strays += [i.key for i in vendors.jira.issues.values() if not set(i.labels) & known]
    with vendors.zendesk.lock:
        strays += [f"ticket {t.id}" for t in vendors.zendesk.tickets.values() if t.external_id not in known]
    with vendors.slack.lock:
        for m in vendors.slack.messages:
            incident = ((m.metadata or {}).get("event_payload") or {}).get("incident_id")
            if m.thread_ts is None and f"incident-{incident}" not in known:
                strays.append(f"slack {m.ts}")
    return strays


def compare(vendors: Vendors, truth: dict[int, Truth]) -> list[Finding]:
    return [check(vendors, t) for t in truth.values() for check in CHECKS.values()]
