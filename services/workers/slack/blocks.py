"""How an incident looks in Slack: the root message's text and Block Kit blocks."""

from __future__ import annotations

from typing import Any

from shared.events import IncidentSnapshot

SECTION_MAX = 2900  # Slack rejects section text over 3000 characters


def escape(text: str) -> str:
    """Slack's mrkdwn treats &, < and > as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def state_line(incident: IncidentSnapshot, deleted: bool) -> str:
    if deleted:
        return "Status: *deleted*"
    ack = "yes" if incident.acknowledged == "yes" else "no"
    return f"Status: *{incident.status}* · Acknowledged: *{ack}*"


def alert_line(incident: IncidentSnapshot) -> str:
    """Severity, source and labels, when the incident came from an alert."""
    parts = []
    if incident.severity:
        parts.append(f"Severity: *{incident.severity}*")
    if incident.source:
        parts.append(f"Source: {escape(incident.source)}")
    if incident.labels:
        parts.append(" ".join(f"`{escape(k)}={escape(v)}`" for k, v in sorted(incident.labels.items())))
    return " · ".join(parts)[:SECTION_MAX]


def root_message(incident: IncidentSnapshot, deleted: bool) -> tuple[str, list[dict[str, Any]]]:
    """The fallback text and the blocks of the incident's root message."""
    message = escape(incident.message)[:SECTION_MAX]
    title = f"Incident #{incident.id}"
    shown = f"~{message}~" if deleted else message
    state = state_line(incident, deleted)
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": f"*{title}*\n{shown}"}}]
    alert = alert_line(incident)
    if alert:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": alert}]})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": state}]})
    return f"{title}: {message} ({state.replace('*', '')})", blocks


def reply_text(text: str, tag: str) -> str:
    return f"{escape(text)}\n{tag}"
