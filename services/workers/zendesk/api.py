"""The Zendesk Support API requests the worker sends, the closed-ticket error, and dry-run answers."""

from __future__ import annotations

from typing import Any

from services.workers.errors import PermanentError
from services.workers.http import Request
from services.workers.httpclient import Response
from services.workers.records import incident_label
from shared.events import IncidentSnapshot

SUBJECT_MAX = 250
COMMENT_PAGE = 100
STATUS = {"resolved": "solved", "unresolved": "open"}
PRIORITY = {"critical": "urgent", "error": "high", "warning": "normal", "info": "low"}


class TicketClosed(PermanentError):
    """Zendesk refuses any change to a closed ticket (422)."""


def classify(response: Response) -> Exception | None:
    if response.status_code == 422 and "closed" in response.text.lower():
        return TicketClosed(f"zendesk {response.path.partition('?')[0]}: ticket is closed")
    return None


def subject(incident: IncidentSnapshot) -> str:
    line = " ".join(incident.message.split())
    text = f"Incident {incident.id}: {line}" if line else f"Incident {incident.id}"
    return text if len(text) <= SUBJECT_MAX else text[: SUBJECT_MAX - 1] + "…"


def find_by_external_id(incident_id: int) -> Request:
    return Request("GET", "/api/v2/tickets.json", params={"external_id": incident_label(incident_id)})


def tags(incident: IncidentSnapshot) -> list[str]:
    """The incident's tag, plus `severity_<level>` (Zendesk tags are single words)."""
    found = [incident_label(incident.id)]
    if incident.severity:
        found.append(f"severity_{incident.severity}")
    return found


def body(incident: IncidentSnapshot) -> str:
    lines = [incident.message or subject(incident)]
    if incident.source:
        lines.append(f"Source: {incident.source}")
    if incident.labels:
        lines.append("Labels: " + ", ".join(f"{k}={v}" for k, v in sorted(incident.labels.items())))
    if incident.dedup_key:
        lines.append(f"Dedup key: {incident.dedup_key}")
    return "\n".join(lines)


def create_ticket(incident: IncidentSnapshot) -> Request:
    label = incident_label(incident.id)
    ticket: dict[str, Any] = {
        "subject": subject(incident),
        "comment": {"body": body(incident), "public": False},
        "external_id": label,
        "tags": tags(incident),
    }
    if incident.severity in PRIORITY:
        ticket["priority"] = PRIORITY[incident.severity]
    return Request("POST", "/api/v2/tickets.json", json={"ticket": ticket})


def alert_update(ticket_id: str, incident: IncidentSnapshot) -> Request:
    """Subject, priority and severity tag; tags are added and removed so that tags people set stay."""
    severity = incident.severity
    return update_ticket(
        ticket_id,
        subject=subject(incident),
        priority=PRIORITY.get(severity) if severity else None,
        additional_tags=[f"severity_{severity}"] if severity else [],
        remove_tags=[f"severity_{level}" for level in PRIORITY if level != severity],
    )


def update_ticket(ticket_id: str, **fields: Any) -> Request:
    return Request("PUT", f"/api/v2/tickets/{ticket_id}.json", json={"ticket": fields})


def private_comment(ticket_id: str, text: str, tag: str) -> Request:
    return update_ticket(ticket_id, comment={"body": f"{text}\n\n{tag}", "public": False})


def list_comments(ticket_id: str, page: int) -> Request:
    params = {"sort_order": "desc", "per_page": str(COMMENT_PAGE), "page": str(page)}
    return Request("GET", f"/api/v2/tickets/{ticket_id}/comments.json", params=params)


def dry_responder(request: Request) -> Any:
    if request.method == "GET" and request.path == "/api/v2/tickets.json":
        return {"tickets": [], "next_page": None, "count": 0}
    if request.method == "POST":
        return {"ticket": {"id": 0, "status": "new"}}
    if request.path.endswith("/comments.json"):
        return {"comments": [], "next_page": None, "count": 0}
    return {"ticket": {}}
