"""Slack worker: a root message carrying metadata, thread replies, and chat.update for the current state."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, ClassVar

import msgspec

from services.workers.engine import NOTE_TEXT, ReconcilingWorker
from services.workers.errors import RateLimited
from services.workers.http import Request, Sender, VendorHttp
from services.workers.records import ExternalRef, IncidentRecord
from services.workers.slack import api
from services.workers.slack.blocks import reply_text, root_message
from services.workers.slack.settings import SlackSettings
from shared.events import IncidentSnapshot

# Slack's clock and the API's may disagree a little; search a bit before the incident was created.
HISTORY_MARGIN_SECONDS = 300.0
MAX_PAGES = 50


class SlackWorker(ReconcilingWorker):
    name: ClassVar[str] = "slack"
    note_kinds: ClassVar[frozenset[str]] = frozenset(NOTE_TEXT)

    def __init__(self, settings: SlackSettings, client: Sender) -> None:
        self.settings = settings
        self.create_grace = settings.create_grace
        token = settings.bot_token.reveal() if settings.bot_token else ""
        self.http = VendorHttp(
            "slack",
            client,
            settings.api_url,
            headers={"Authorization": f"Bearer {token}"} if token else {},
            dry_run=api.dry_responder(settings) if settings.dry_run else None,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str], client: Sender) -> SlackWorker:
        return cls(SlackSettings.from_env(env), client)

    @property
    def dry_run(self) -> bool:
        return self.http.dry_run

    async def call(self, request: Request) -> dict[str, Any]:
        """Send, and turn Slack's HTTP 200 `ok: false` into the matching WorkerError."""
        response = await self.http.send(request)
        try:
            body = response.json()
        except ValueError:
            body = None
        error = api.slack_error(request.path.lstrip("/"), body, response)
        if isinstance(error, RateLimited):
            self.http.rate_limited(error.retry_after)
        if error is not None:
            raise error
        assert isinstance(body, dict)
        return body

    async def find(self, incident: IncidentSnapshot) -> ExternalRef | None:
        oldest = incident.created_at.timestamp() - HISTORY_MARGIN_SECONDS
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            body = await self.call(api.history(self.settings.channel, oldest, cursor))
            for message in body.get("messages") or []:
                metadata = message.get("metadata") or {}
                payload = metadata.get("event_payload") or {}
                if metadata.get("event_type") == api.METADATA_EVENT_TYPE and str(payload.get("incident_id")) == str(
                    incident.id
                ):
                    return slack_ref(str(message["ts"]), self.settings.channel)
            cursor = api.next_cursor(body)
            if not cursor:
                return None
        return None

    async def create(self, incident: IncidentSnapshot) -> ExternalRef:
        body = await self.call(api.post_root(self.settings, incident))
        return slack_ref(str(body["ts"]), str(body.get("channel") or self.settings.channel))

    async def post(self, ref: ExternalRef, text: str, tag: str) -> None:
        await self.call(api.post_reply(_channel(ref, self.settings), ref.id, reply_text(text, tag)))

    async def has_post(self, ref: ExternalRef, tag: str) -> bool:
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            body = await self.call(api.replies(_channel(ref, self.settings), ref.id, cursor))
            if any(tag in str(m.get("text", "")) for m in body.get("messages") or [] if m.get("ts") != ref.id):
                return True
            cursor = api.next_cursor(body)
            if not cursor:
                return False
        return False

    def shown(self, incident: IncidentSnapshot, record: IncidentRecord) -> str | None:
        # Without the buttons' version: a change that shows nothing new (a comment) leaves the message as it
        # is, and its buttons' older version still holds (no change of state came after it).
        text, blocks = root_message(
            incident, deleted=record.deleted, interactive=self.settings.interactive, acted=record.acted, version=0
        )
        return hashlib.blake2b(msgspec.json.encode([text, blocks]), digest_size=8).hexdigest()

    async def refresh(self, ref: ExternalRef, incident: IncidentSnapshot, record: IncidentRecord) -> None:
        channel = _channel(ref, self.settings)
        interactive = self.settings.interactive
        await self.call(
            api.update_root(channel, ref.id, incident, record.deleted, interactive=interactive, acted=record.acted)
        )


def _channel(ref: ExternalRef, settings: SlackSettings) -> str:
    return ref.channel or settings.channel


def slack_ref(ts: str, channel: str) -> ExternalRef:
    """Slack redirects archive links to the reader's workspace."""
    return ExternalRef(id=ts, channel=channel, url=f"https://slack.com/archives/{channel}/p{ts.replace('.', '')}")
