"""How an incident looks in Slack: the root message's text and Block Kit blocks."""

from __future__ import annotations

from typing import Any

from shared.events import IncidentSnapshot
from shared.twoway import SLACK_ACTIONS_BLOCK, ButtonAction, button_value

SECTION_MAX = 2900  # Slack rejects section text over 3000 characters


def escape(text: str) -> str:
    """Slack's mrkdwn treats &, < and > as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def state_line(incident: IncidentSnapshot, deleted: bool, acted: str | None = None) -> str:
    if deleted:
        return "Status: *deleted*"
    ack = "yes" if incident.acknowledged == "yes" else "no"
    line = f"Status: *{incident.status}* · Acknowledged: *{ack}*"
    return f"{line} · {escape(acted)[:200]}" if acted else line


def buttons(incident: IncidentSnapshot, version: int) -> dict[str, Any]:
    """Acknowledge and Resolve while open, Reopen once resolved; each carries the version drawn, so that a
    click on an older message never undoes a newer change."""
    if incident.status == "resolved":
        actions = [ButtonAction.REOPEN]
    elif incident.acknowledged == "yes":
        actions = [ButtonAction.RESOLVE]
    else:
        actions = [ButtonAction.ACKNOWLEDGE, ButtonAction.RESOLVE]
    value = button_value(incident.id, version)
    elements = [
        {"type": "button", "action_id": a.value, "text": {"type": "plain_text", "text": a.text}, "value": value}
        for a in actions
    ]
    if ButtonAction.RESOLVE in actions:
        elements[-1]["style"] = "primary"
    return {"type": "actions", "block_id": SLACK_ACTIONS_BLOCK, "elements": elements}


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


def root_message(
    incident: IncidentSnapshot,
    deleted: bool,
    *,
    interactive: bool = False,
    acted: str | None = None,
    version: int | None = None,
) -> tuple[str, list[dict[str, Any]]]:
    """The fallback text and the blocks of the incident's root message; with `interactive`, its buttons,
    drawn for `version` (the snapshot's unless given)."""
    message = escape(incident.message)[:SECTION_MAX]
    title = f"Incident #{incident.id}"
    shown = f"~{message}~" if deleted else message
    state = state_line(incident, deleted)
    shown_state = state_line(incident, deleted, acted)  # who acted shows in the blocks, not the fallback text
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": f"*{title}*\n{shown}"}}]
    alert = alert_line(incident)
    if alert:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": alert}]})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": shown_state}]})
    if interactive and not deleted:
        blocks.append(buttons(incident, incident.version if version is None else version))
    return f"{title}: {message} ({state.replace('*', '')})", blocks


def reply_text(text: str, tag: str) -> str:
    return f"{escape(text)}\n{tag}"
