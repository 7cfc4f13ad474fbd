"""The Slack Web API calls the worker makes, its `ok: false` errors mapped, and dry-run answers."""

from __future__ import annotations

from typing import Any

from services.workers.errors import PermanentError, RateLimited, RetryableError, WorkerError
from services.workers.http import Request, parse_retry_after
from services.workers.httpclient import Response
from services.workers.slack.blocks import root_message
from services.workers.slack.settings import SlackSettings
from shared.events import IncidentSnapshot

METADATA_EVENT_TYPE = "incident"
# Slack's own trouble; everything else (channel_not_found, invalid_auth, ...) needs a human.
RETRYABLE_ERRORS = frozenset(
    {"ratelimited", "rate_limited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
PAGE = 200


def slack_error(method: str, body: Any, response: Response | None = None) -> WorkerError | None:
    """None when the body says ok; else the error the runner should act on."""
    if isinstance(body, dict) and body.get("ok") is True:
        return None
    error = str(body.get("error", "unknown_error")) if isinstance(body, dict) else "malformed_response"
    what = f"slack {method}: {error}"
    if error in ("ratelimited", "rate_limited"):
        header = response.headers.get("retry-after") if response is not None else None
        return RateLimited(what, parse_retry_after(header))
    if error in RETRYABLE_ERRORS:
        return RetryableError(what)
    return PermanentError(what)


def post_root(settings: SlackSettings, incident: IncidentSnapshot) -> Request:
    text, blocks = root_message(incident, deleted=False, interactive=settings.interactive)
    metadata = {"event_type": METADATA_EVENT_TYPE, "event_payload": {"incident_id": str(incident.id)}}
    payload = {"channel": settings.channel, "text": text, "blocks": blocks, "metadata": metadata}
    return Request("POST", "/chat.postMessage", json=payload)


def post_reply(channel: str, thread_ts: str, text: str) -> Request:
    return Request("POST", "/chat.postMessage", json={"channel": channel, "thread_ts": thread_ts, "text": text})


def update_root(
    channel: str,
    ts: str,
    incident: IncidentSnapshot,
    deleted: bool,
    *,
    interactive: bool = False,
    acted: str | None = None,
) -> Request:
    text, blocks = root_message(incident, deleted=deleted, interactive=interactive, acted=acted)
    return Request("POST", "/chat.update", json={"channel": channel, "ts": ts, "text": text, "blocks": blocks})


def history(channel: str, oldest: float, cursor: str | None) -> Request:
    params = {"channel": channel, "include_all_metadata": "true", "limit": str(PAGE), "oldest": f"{oldest:.6f}"}
    if cursor:
        params["cursor"] = cursor
    return Request("GET", "/conversations.history", params=params)


def replies(channel: str, ts: str, cursor: str | None) -> Request:
    params = {"channel": channel, "ts": ts, "limit": str(PAGE)}
    if cursor:
        params["cursor"] = cursor
    return Request("GET", "/conversations.replies", params=params)


def next_cursor(body: dict[str, Any]) -> str | None:
    return (body.get("response_metadata") or {}).get("next_cursor") or None


def dry_responder(settings: SlackSettings) -> Any:
    def respond(request: Request) -> Any:
        if request.path == "/chat.postMessage":
            return {"ok": True, "channel": settings.channel, "ts": "0000000000.000000"}
        if request.path in ("/conversations.history", "/conversations.replies"):
            return {"ok": True, "messages": [], "has_more": False}
        return {"ok": True}

    return respond
