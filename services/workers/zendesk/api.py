"""The Zendesk Support API requests the worker sends, the closed-ticket error, and dry-run answers."""

from __future__ import annotations

from typing import Any

import httpx

from services.workers.errors import PermanentError
from services.workers.http import Request
from services.workers.records import incident_label
from shared.events import IncidentSnapshot

SUBJECT_MAX = 250
COMMENT_PAGE = 100
STATUS = {"resolved": "solved", "unresolved": "open"}


class TicketClosed(PermanentError):
    """Zendesk refuses any change to a closed ticket (422)."""


def classify(response: httpx.Response) -> Exception | None:
    if response.status_code == 422 and "closed" in response.text.lower():
        return TicketClosed(f"zendesk {response.request.url.path}: ticket is closed")
    return None


def subject(incident: IncidentSnapshot) -> str:
    line = " ".join(incident.message.split())
    text = f"Incident {incident.id}: {line}" if line else f"Incident {incident.id}"
    return text if len(text) <= SUBJECT_MAX else text[: SUBJECT_MAX - 1] + "…"


def find_by_external_id(incident_id: int) -> Request:
    return Request("GET", "/api/v2/tickets.json", params={"external_id": incident_label(incident_id)})


def create_ticket(incident: IncidentSnapshot) -> Request:
    label = incident_label(incident.id)
    ticket = {
        "subject": subject(incident),
        "comment": {"body": incident.message or subject(incident), "public": False},
        "external_id": label,
        "tags": [label],
    }
    return Request("POST", "/api/v2/tickets.json", json={"ticket": ticket})


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
