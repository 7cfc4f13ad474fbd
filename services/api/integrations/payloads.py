"""The vendors' request bodies, read into what an action needs. No I/O; malformed input raises Malformed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import msgspec

from shared.twoway import ButtonAction, incident_of_tag, parse_button_value

MAX_NAME = 100


class Malformed(ValueError):
    """A body that is not the vendor's documented shape: answered 400."""


@dataclass(frozen=True, slots=True)
class Click:
    incident_id: int
    drawn_version: int
    action: ButtonAction
    user: str
    action_ts: str
    user_id: str


@dataclass(frozen=True, slots=True)
class StatusChange:
    """A status that changed outside, on the object tagged `incident-<id>` (None: not one of ours)."""

    incident_id: int | None
    status: str
    """Jira: the status category key (`new`, `indeterminate`, `done`); Zendesk: the status, lower case."""
    actor_name: str
    actor_id: str


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Malformed(f"{what} must be an object")
    return value


def _text(value: Any, what: str, *, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or (required and not value.strip()):
        raise Malformed(f"{what} must be a non-empty string")
    return value.strip()


def _json(raw: bytes | str, what: str) -> dict[str, Any]:
    try:
        decoded = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise Malformed(f"{what} is not valid JSON") from None
    return _object(decoded, what)


def slack_click(body: bytes) -> Click | None:
    """A `block_actions` interactivity payload; None for a payload that is not a click on our buttons."""
    try:
        form = parse_qs(body.decode("utf-8"), strict_parsing=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        raise Malformed("body must be application/x-www-form-urlencoded") from None
    fields = form.get("payload")
    if not fields or len(fields) != 1:
        raise Malformed("form field `payload` is required once")
    payload = _json(fields[0], "payload")
    if payload.get("type") != "block_actions":
        return None
    actions = payload.get("actions")
    if not isinstance(actions, list) or not actions:
        raise Malformed("payload.actions must be a non-empty list")
    action = _object(actions[0], "payload.actions[0]")
    try:
        kind = ButtonAction(_text(action.get("action_id"), "actions[0].action_id"))
    except ValueError:
        return None  # another app's button, or one we no longer draw
    parsed = parse_button_value(_text(action.get("value"), "actions[0].value"))
    if parsed is None:
        raise Malformed("actions[0].value must be `<incident id>:<version>`")
    user = _object(payload.get("user"), "payload.user")
    name = user.get("username") or user.get("name")
    return Click(
        incident_id=parsed[0],
        drawn_version=parsed[1],
        action=kind,
        user=_text(name, "user.username")[:MAX_NAME],
        action_ts=_text(action.get("action_ts"), "actions[0].action_ts")[:64],
        user_id=_text(user.get("id"), "user.id")[:64],
    )


def jira_status_change(body: bytes) -> StatusChange | None:
    """A `jira:issue_updated` webhook whose changelog moves the status; None for anything else."""
    payload = _json(body, "body")
    if payload.get("webhookEvent") != "jira:issue_updated":
        return None
    changelog = payload.get("changelog") or {}
    items = _object(changelog, "changelog").get("items") or []
    if not isinstance(items, list):
        raise Malformed("changelog.items must be a list")
    if not any(isinstance(item, dict) and item.get("field") == "status" for item in items):
        return None
    issue = _object(payload.get("issue"), "issue")
    fields = _object(issue.get("fields"), "issue.fields")
    labels = fields.get("labels") or []
    if not isinstance(labels, list):
        raise Malformed("issue.fields.labels must be a list")
    ids = {incident_of_tag(label) for label in labels if isinstance(label, str)} - {None}
    status = _object(fields.get("status"), "issue.fields.status")
    category = _object(status.get("statusCategory"), "issue.fields.status.statusCategory")
    user = _object(payload.get("user") or {}, "user")
    return StatusChange(
        incident_id=ids.pop() if len(ids) == 1 else None,
        status=_text(category.get("key"), "statusCategory.key").lower(),
        actor_name=_text(user.get("displayName") or user.get("name") or "unknown", "user.displayName")[:MAX_NAME],
        actor_id=_text(user.get("accountId"), "user.accountId", required=False),
    )


def zendesk_status_change(body: bytes) -> StatusChange:
    """The trigger's body the README documents (ticket_id, external_id, status, updated_by, updated_by_email)."""
    payload = _json(body, "body")
    external_id = _text(payload.get("external_id"), "external_id", required=False)
    return StatusChange(
        incident_id=incident_of_tag(external_id),
        status=_text(payload.get("status"), "status").lower(),
        actor_name=_text(payload.get("updated_by") or "unknown", "updated_by")[:MAX_NAME],
        actor_id=_text(payload.get("updated_by_email"), "updated_by_email", required=False),
    )
