"""A fake Zendesk Support API: tickets by external_id, comments, statuses, 422 on closed tickets."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.server import FakeRequest, FakeServer, Reply

STATUSES = ("new", "open", "pending", "hold", "solved", "closed")


@dataclass
class Ticket:
    id: int
    subject: str
    external_id: str | None
    tags: list[str]
    status: str = "new"
    priority: str | None = None
    comments: list[dict[str, Any]] = field(default_factory=list)

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "subject": self.subject,
            "external_id": self.external_id,
            "tags": self.tags,
            "status": self.status,
            "priority": self.priority,
            "description": self.comments[0]["body"] if self.comments else "",
        }

    def comment_bodies(self) -> list[str]:
        return [c["body"] for c in self.comments]


def _invalid(attribute: str, description: str) -> Reply:
    details = {attribute: [{"description": description}]}
    return Reply(422, {"error": "RecordInvalid", "description": "Record validation errors", "details": details})


class FakeZendesk(FakeServer):
    vendor = "zendesk"

    def __init__(self, email: str = "agent@example.com", token: str = "zd-token") -> None:
        super().__init__()
        self.email, self.token = email, token
        self.tickets: dict[int, Ticket] = {}
        self.on_create: Callable[[Ticket], None] | None = None
        self.agent_name = "Incidents Bot"
        self.on_status_change: Callable[[dict[str, str]], None] | None = None
        """Called with the body of the documented trigger ("status changed") each time a ticket's status changes."""
        self.webhooks_sent = 0
        self._next_id = 100

    def authorized(self, request: FakeRequest) -> bool:
        expected = base64.b64encode(f"{self.email}/token:{self.token}".encode()).decode()
        return request.headers.get("authorization") == f"Basic {expected}"

    def unauthorized(self) -> Reply:
        return Reply(401, {"error": "Couldn't authenticate you"})

    # -- inspection ------------------------------------------------------------------------------
    def for_incident(self, incident_id: int) -> list[Ticket]:
        with self.lock:
            return [t for t in self.tickets.values() if t.external_id == f"incident-{incident_id}"]

    def only(self, incident_id: int) -> Ticket:
        found = self.for_incident(incident_id)
        assert len(found) == 1, f"expected exactly one ticket for incident {incident_id}, found {len(found)}"
        return found[0]

    def close_ticket(self, ticket_id: int) -> None:
        """What Zendesk's automations do to solved tickets after a few days."""
        with self.lock:
            self.tickets[ticket_id].status = "closed"

    def set_status_by_person(self, ticket_id: int, status: str, name: str, email: str) -> None:
        """An agent changes the status in Zendesk's UI: the trigger fires."""
        with self.lock:
            self._set_status(self.tickets[ticket_id], status, name, email)

    def _set_status(self, ticket: Ticket, status: str, name: str, email: str) -> None:
        before, ticket.status = ticket.status, status
        if self.on_status_change is None or before == status:
            return
        self.webhooks_sent += 1
        # What the README's trigger sends; the status is the fixed value of that trigger's condition.
        self.on_status_change(
            {
                "ticket_id": str(ticket.id),
                "external_id": ticket.external_id or "",
                "status": status,
                "updated_by": name,
                "updated_by_email": email,
            }
        )

    # -- handlers --------------------------------------------------------------------------------
    def create(self, request: FakeRequest) -> Reply:
        ticket = (request.json() or {}).get("ticket") or {}
        comment = ticket.get("comment") or {}
        if not comment.get("body"):
            return _invalid("description", "Description: cannot be blank")
        priority = ticket.get("priority")
        if priority not in (None, "low", "normal", "high", "urgent"):
            return _invalid("priority", f"Priority: {priority} is not valid")
        self._next_id += 1
        subject, tags = ticket.get("subject") or "", ticket.get("tags") or []
        created = Ticket(self._next_id, subject, ticket.get("external_id"), tags, priority=priority)
        created.comments.append({"id": 1, "body": comment["body"], "public": comment.get("public", True)})
        self.tickets[created.id] = created
        if self.on_create is not None:
            self.on_create(created)
        return Reply(201, {"ticket": created.public()})

    def list_tickets(self, request: FakeRequest) -> Reply:
        external_id = request.query.get("external_id")
        tickets = [t.public() for t in self.tickets.values() if external_id is None or t.external_id == external_id]
        return Reply(200, {"tickets": tickets, "next_page": None, "previous_page": None, "count": len(tickets)})

    def show(self, request: FakeRequest, ticket_id: str) -> Reply:
        ticket = self.tickets.get(int(ticket_id))
        return Reply(200, {"ticket": ticket.public()}) if ticket else Reply(404, {"error": "RecordNotFound"})

    def update(self, request: FakeRequest, ticket_id: str) -> Reply:
        ticket = self.tickets.get(int(ticket_id))
        if ticket is None:
            return Reply(404, {"error": "RecordNotFound", "description": "Not found"})
        if ticket.status == "closed":
            return _invalid("status", "Status: closed prevents ticket update")
        changes = (request.json() or {}).get("ticket") or {}
        status = changes.get("status")
        if status is not None and status not in STATUSES:
            return _invalid("status", f"Status: {status} is not valid")
        if changes.get("priority") not in (None, "low", "normal", "high", "urgent"):
            return _invalid("priority", f"Priority: {changes['priority']} is not valid")
        comment = changes.get("comment")
        if comment is not None:
            if not comment.get("body"):
                return _invalid("comment", "Comment: cannot be blank")
            ticket.comments.append(
                {"id": len(ticket.comments) + 1, "body": comment["body"], "public": comment.get("public", True)}
            )
        if status is not None:
            self._set_status(ticket, status, self.agent_name, self.email)
        elif ticket.status == "new":
            self._set_status(ticket, "open", self.agent_name, self.email)
        if "subject" in changes:
            ticket.subject = changes["subject"]
        if "priority" in changes:
            ticket.priority = changes["priority"]
        ticket.tags = [t for t in ticket.tags if t not in (changes.get("remove_tags") or [])]
        ticket.tags += [t for t in changes.get("additional_tags") or [] if t not in ticket.tags]
        return Reply(200, {"ticket": ticket.public(), "audit": {"ticket_id": ticket.id, "events": []}})

    def comments(self, request: FakeRequest, ticket_id: str) -> Reply:
        ticket = self.tickets.get(int(ticket_id))
        if ticket is None:
            return Reply(404, {"error": "RecordNotFound"})
        items = list(ticket.comments)
        if request.query.get("sort_order") == "desc":
            items.reverse()
        page, per_page = int(request.query.get("page", 1)), int(request.query.get("per_page", 100))
        chunk = items[(page - 1) * per_page : page * per_page]
        more = page * per_page < len(items)
        next_page = f"{self.url}/api/v2/tickets/{ticket_id}/comments.json?page={page + 1}" if more else None
        return Reply(200, {"comments": chunk, "next_page": next_page, "count": len(items)})

    routes = [
        ("POST", re.compile(r"/api/v2/tickets\.json"), create),
        ("GET", re.compile(r"/api/v2/tickets\.json"), list_tickets),
        ("GET", re.compile(r"/api/v2/tickets/(\d+)\.json"), show),
        ("PUT", re.compile(r"/api/v2/tickets/(\d+)\.json"), update),
        ("GET", re.compile(r"/api/v2/tickets/(\d+)/comments\.json"), comments),
    ]
