"""Zendesk worker: a ticket per incident, private comments, solved/open/closed statuses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import structlog

from services.workers.engine import ReconcilingWorker
from services.workers.http import Request, Sender, VendorHttp, basic_auth
from services.workers.records import ExternalRef
from services.workers.zendesk import api
from services.workers.zendesk.settings import ZendeskSettings
from shared.events import IncidentSnapshot

log = structlog.get_logger(__name__)

MAX_COMMENT_PAGES = 20


class ZendeskWorker(ReconcilingWorker):
    name: ClassVar[str] = "zendesk"
    note_kinds: ClassVar[frozenset[str]] = frozenset({"updated", "acknowledged", "unacknowledged", "deleted"})

    def __init__(self, settings: ZendeskSettings, client: Sender) -> None:
        self.settings = settings
        self.create_grace = settings.create_grace
        auth = None
        if settings.email and settings.api_token:
            auth = basic_auth(f"{settings.email}/token", settings.api_token.reveal())
        self.http = VendorHttp(
            "zendesk",
            client,
            settings.base_url,
            authorization=auth,
            dry_run=api.dry_responder if settings.dry_run else None,
            classify=api.classify,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str], client: Sender) -> ZendeskWorker:
        return cls(ZendeskSettings.from_env(env), client)

    @property
    def dry_run(self) -> bool:
        return self.http.dry_run

    async def find(self, incident: IncidentSnapshot) -> ExternalRef | None:
        body = await self.http.json(api.find_by_external_id(incident.id))
        tickets = sorted(body.get("tickets") or [], key=lambda t: int(t["id"]))
        if len(tickets) > 1:
            log.warning("several tickets carry the incident's external_id; using the oldest", count=len(tickets))
        return self._ref(str(tickets[0]["id"])) if tickets else None

    async def create(self, incident: IncidentSnapshot) -> ExternalRef:
        body = await self.http.json(api.create_ticket(incident))
        return self._ref(str(body["ticket"]["id"]))

    def _ref(self, ticket_id: str) -> ExternalRef:
        return ExternalRef(id=ticket_id, url=f"{self.settings.base_url.rstrip('/')}/agent/tickets/{ticket_id}")

    async def post(self, ref: ExternalRef, text: str, tag: str) -> None:
        await self._update(api.private_comment(ref.id, text, tag))

    async def has_post(self, ref: ExternalRef, tag: str) -> bool:
        for page in range(1, MAX_COMMENT_PAGES + 1):
            body = await self.http.json(api.list_comments(ref.id, page))
            comments = body.get("comments") or []
            if any(tag in str(c.get("body", "")) for c in comments):
                return True
            if not comments or not body.get("next_page"):
                return False
        return False

    async def update_message(self, ref: ExternalRef, incident: IncidentSnapshot) -> None:
        await self._update(api.alert_update(ref.id, incident))

    async def set_status(self, ref: ExternalRef, status: str) -> None:
        await self._update(api.update_ticket(ref.id, status=api.STATUS[status]))

    async def close(self, ref: ExternalRef) -> None:
        await self._update(api.update_ticket(ref.id, status="closed"))

    async def _update(self, request: Request) -> None:
        try:
            await self.http.json(request)
        except api.TicketClosed:
            # Closed is final in Zendesk (also set by its own automations after a solve); nothing to retry.
            log.warning("ticket is closed in Zendesk; change not synced", path=request.path)
