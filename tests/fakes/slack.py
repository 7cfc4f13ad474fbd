"""A fake Slack Web API: chat.postMessage/update, conversations.history/replies, `ok: false` errors."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.server import FakeRequest, FakeServer, Reply


@dataclass
class Message:
    ts: str
    text: str
    blocks: list[Any] = field(default_factory=list)
    metadata: dict[str, Any] | None = None
    thread_ts: str | None = None
    edits: int = 0

    def public(self, with_metadata: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "message", "ts": self.ts, "text": self.text, "blocks": self.blocks}
        if self.thread_ts:
            out["thread_ts"] = self.thread_ts
        if with_metadata and self.metadata:
            out["metadata"] = self.metadata
        return out


def _page(items: list[dict[str, Any]], request: FakeRequest) -> dict[str, Any]:
    start, limit = int(request.query.get("cursor") or 0), int(request.query.get("limit") or 100)
    page = items[start : start + limit]
    more = start + limit < len(items)
    return {
        "ok": True,
        "messages": page,
        "has_more": more,
        "response_metadata": {"next_cursor": str(start + limit) if more else ""},
    }


class FakeSlack(FakeServer):
    vendor = "slack"

    def __init__(self, token: str = "xoxb-test-token", channel: str = "C0INCIDENTS") -> None:
        super().__init__()
        self.token, self.channel = token, channel
        self.messages: list[Message] = []
        self.on_create: Callable[[Message], None] | None = None
        self._clock = int(time.time())
        self._seq = 0

    def authorized(self, request: FakeRequest) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.token}"

    def unauthorized(self) -> Reply:
        return Reply(200, {"ok": False, "error": "invalid_auth"})

    def error_next(self, count: int, error: str, **match: Any) -> None:
        self.fail_next(count, 200, {"ok": False, "error": error}, **match)

    # -- inspection ------------------------------------------------------------------------------
    def roots_for(self, incident_id: int) -> list[Message]:
        with self.lock:
            return [
                m
                for m in self.messages
                if m.thread_ts is None
                and m.metadata
                and m.metadata.get("event_payload", {}).get("incident_id") == str(incident_id)
            ]

    def only(self, incident_id: int) -> Message:
        found = self.roots_for(incident_id)
        assert len(found) == 1, f"expected exactly one root message for incident {incident_id}, found {len(found)}"
        return found[0]

    def button(self, ts: str, action_id: str) -> dict[str, Any] | None:
        """The button `action_id` on the root message as it shows now (None when it is not there)."""
        with self.lock:
            message = self._find(ts)
            blocks = list(message.blocks) if message else []
        for block in blocks:
            for element in block.get("elements") or [] if block.get("type") == "actions" else []:
                if element.get("type") == "button" and element.get("action_id") == action_id:
                    return {**element, "block_id": block.get("block_id")}
        return None

    def replies(self, ts: str) -> list[str]:
        with self.lock:
            return [m.text for m in self.messages if m.thread_ts == ts]

    # -- handlers --------------------------------------------------------------------------------
    def _next_ts(self) -> str:
        self._seq += 1
        return f"{self._clock}.{self._seq:06d}"

    def _find(self, ts: str | None) -> Message | None:
        return next((m for m in self.messages if m.ts == ts and m.thread_ts is None), None)

    def post_message(self, request: FakeRequest) -> Reply:
        body = request.json() or {}
        if body.get("channel") != self.channel:
            return Reply(200, {"ok": False, "error": "channel_not_found"})
        if not body.get("text") and not body.get("blocks"):
            return Reply(200, {"ok": False, "error": "no_text"})
        thread_ts = body.get("thread_ts")
        if thread_ts is not None and self._find(thread_ts) is None:
            return Reply(200, {"ok": False, "error": "thread_not_found"})
        blocks, metadata = body.get("blocks") or [], body.get("metadata")
        message = Message(self._next_ts(), body.get("text", ""), blocks, metadata, thread_ts)
        self.messages.append(message)
        if thread_ts is None and self.on_create is not None:
            self.on_create(message)
        return Reply(200, {"ok": True, "channel": self.channel, "ts": message.ts, "message": message.public(True)})

    def update(self, request: FakeRequest) -> Reply:
        body = request.json() or {}
        if body.get("channel") != self.channel:
            return Reply(200, {"ok": False, "error": "channel_not_found"})
        message = self._find(body.get("ts"))
        if message is None:
            return Reply(200, {"ok": False, "error": "message_not_found"})
        message.text = body.get("text", message.text)
        message.blocks = body.get("blocks", message.blocks)
        message.edits += 1
        return Reply(200, {"ok": True, "channel": self.channel, "ts": message.ts, "text": message.text})

    def history(self, request: FakeRequest) -> Reply:
        if request.query.get("channel") != self.channel:
            return Reply(200, {"ok": False, "error": "channel_not_found"})
        oldest = float(request.query.get("oldest") or 0)
        with_metadata = request.query.get("include_all_metadata") in ("true", "1")
        roots = [
            m.public(with_metadata) for m in reversed(self.messages) if m.thread_ts is None and float(m.ts) > oldest
        ]
        return Reply(200, _page(roots, request))

    def replies_of(self, request: FakeRequest) -> Reply:
        if request.query.get("channel") != self.channel:
            return Reply(200, {"ok": False, "error": "channel_not_found"})
        parent = self._find(request.query.get("ts"))
        if parent is None:
            return Reply(200, {"ok": False, "error": "thread_not_found"})
        thread = [parent.public(False)] + [m.public(False) for m in self.messages if m.thread_ts == parent.ts]
        return Reply(200, _page(thread, request))

    routes = [
        ("POST", re.compile(r"/chat\.postMessage"), post_message),
        ("POST", re.compile(r"/chat\.update"), update),
        ("GET", re.compile(r"/conversations\.history"), history),
        ("GET", re.compile(r"/conversations\.replies"), replies_of),
    ]
