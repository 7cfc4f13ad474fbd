"""The Jira Cloud REST v3 requests the worker sends, built as data, and the answers a dry run assumes."""

from __future__ import annotations

from typing import Any

from services.workers.http import Request
from services.workers.jira.adf import document, summary
from services.workers.jira.settings import JiraSettings
from services.workers.records import incident_label
from shared.events import IncidentSnapshot

API = "/rest/api/3"
COMMENT_PAGE = 100
SEVERITIES = ("critical", "error", "warning", "info")


def search_by_label(settings: JiraSettings, incident_id: int) -> Request:
    jql = f'project = "{settings.project_key}" AND labels = "{incident_label(incident_id)}" ORDER BY created ASC'
    return Request("POST", f"{API}/search/jql", json={"jql": jql, "fields": ["summary", "status"], "maxResults": 10})


def description(incident: IncidentSnapshot) -> dict[str, Any]:
    return document(
        incident.message, *alert_lines(incident), f"Incident {incident.id}, kept in sync by the incident platform."
    )


def alert_lines(incident: IncidentSnapshot) -> list[str]:
    """Severity, source, labels and dedup key, one line each, for the description."""
    lines = []
    if incident.severity:
        lines.append(f"Severity: {incident.severity}")
    if incident.source:
        lines.append(f"Source: {incident.source}")
    if incident.labels:
        lines.append("Labels: " + ", ".join(f"{k}={v}" for k, v in sorted(incident.labels.items())))
    if incident.dedup_key:
        lines.append(f"Dedup key: {incident.dedup_key}")
    return lines


def labels(incident: IncidentSnapshot) -> list[str]:
    """The incident's tag, plus `severity-<level>` so that Jira filters and boards can sort by it."""
    found = [incident_label(incident.id)]
    if incident.severity:
        found.append(f"severity-{incident.severity}")
    return found


def create_issue(settings: JiraSettings, incident: IncidentSnapshot) -> Request:
    fields = {
        "project": {"key": settings.project_key},
        "issuetype": {"name": settings.issue_type},
        "summary": summary(incident.message, incident.id),
        "description": description(incident),
        "labels": labels(incident),
    }
    return Request("POST", f"{API}/issue", json={"fields": fields})


def edit_issue(key: str, incident: IncidentSnapshot) -> Request:
    fields = {"summary": summary(incident.message, incident.id), "description": description(incident)}
    # Label operations, not a new label list: labels people added in Jira stay.
    ops: list[dict[str, str]] = [{"remove": f"severity-{level}"} for level in SEVERITIES if level != incident.severity]
    if incident.severity:
        ops.append({"add": f"severity-{incident.severity}"})
    return Request("PUT", f"{API}/issue/{key}", json={"fields": fields, "update": {"labels": ops}})


def add_comment(key: str, text: str, tag: str) -> Request:
    return Request("POST", f"{API}/issue/{key}/comment", json={"body": document(text, tag)})


def list_comments(key: str, start_at: int) -> Request:
    params = {"orderBy": "-created", "startAt": str(start_at), "maxResults": str(COMMENT_PAGE)}
    return Request("GET", f"{API}/issue/{key}/comment", params=params)


def get_transitions(key: str) -> Request:
    return Request("GET", f"{API}/issue/{key}/transitions")


def do_transition(key: str, transition_id: str) -> Request:
    return Request("POST", f"{API}/issue/{key}/transitions", json={"transition": {"id": transition_id}})


def dry_responder(settings: JiraSettings) -> Any:
    """Plausible answers, so that a dry run walks the same path as a live one."""

    def respond(request: Request) -> Any:
        if request.path.endswith("/search/jql"):
            return {"issues": [], "isLast": True}
        if request.method == "POST" and request.path == f"{API}/issue":
            return {"id": "0", "key": f"{settings.project_key}-0", "self": ""}
        if request.path.endswith("/comment") and request.method == "GET":
            return {"startAt": 0, "maxResults": COMMENT_PAGE, "total": 0, "comments": []}
        if request.path.endswith("/transitions") and request.method == "GET":
            names = (settings.done_transition, settings.reopen_transition)
            return {"transitions": [{"id": f"dry-run-{n}", "name": n} for n in names]}
        return {}

    return respond
