"""Jira worker: issue per incident, ADF comments, transitions by name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import structlog

from services.workers.engine import ReconcilingWorker
from services.workers.http import Sender, VendorHttp, basic_auth
from services.workers.jira import api
from services.workers.jira.adf import plain_text
from services.workers.jira.settings import JiraSettings
from services.workers.records import ExternalRef
from shared.events import IncidentSnapshot

log = structlog.get_logger(__name__)

MAX_COMMENT_PAGES = 20


class JiraWorker(ReconcilingWorker):
    name: ClassVar[str] = "jira"
    note_kinds: ClassVar[frozenset[str]] = frozenset({"acknowledged", "unacknowledged", "deleted"})

    def __init__(self, settings: JiraSettings, client: Sender) -> None:
        self.settings = settings
        self.create_grace = settings.create_grace
        self.search_lag = settings.search_lag
        auth = None
        if settings.email and settings.api_token:
            auth = basic_auth(settings.email, settings.api_token.reveal())
        self.http = VendorHttp(
            "jira",
            client,
            settings.base_url,
            authorization=auth,
            headers={"Accept": "application/json"},
            dry_run=api.dry_responder(settings) if settings.dry_run else None,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str], client: Sender) -> JiraWorker:
        return cls(JiraSettings.from_env(env), client)

    @property
    def dry_run(self) -> bool:
        return self.http.dry_run

    async def find(self, incident: IncidentSnapshot) -> ExternalRef | None:
        body = await self.http.json(api.search_by_label(self.settings, incident.id))
        issues = body.get("issues") or []
        if len(issues) > 1:
            log.warning("several issues carry the incident's label; using the oldest", count=len(issues))
        if not issues:
            return None
        return self._ref(str(issues[0]["id"]), str(issues[0]["key"]))

    async def create(self, incident: IncidentSnapshot) -> ExternalRef:
        body = await self.http.json(api.create_issue(self.settings, incident))
        return self._ref(str(body["id"]), str(body["key"]))

    def _ref(self, issue_id: str, key: str) -> ExternalRef:
        return ExternalRef(id=issue_id, key=key, url=f"{self.settings.base_url.rstrip('/')}/browse/{key}")

    async def post(self, ref: ExternalRef, text: str, tag: str) -> None:
        await self.http.json(api.add_comment(_key(ref), text, tag))

    async def has_post(self, ref: ExternalRef, tag: str) -> bool:
        start = 0
        for _ in range(MAX_COMMENT_PAGES):
            body = await self.http.json(api.list_comments(_key(ref), start))
            comments = body.get("comments") or []
            if any(tag in plain_text(c.get("body")) for c in comments):
                return True
            start += len(comments)
            if not comments or start >= int(body.get("total", 0)):
                return False
        return False

    async def update_message(self, ref: ExternalRef, incident: IncidentSnapshot) -> None:
        await self.http.send(api.edit_issue(_key(ref), incident))

    async def set_status(self, ref: ExternalRef, status: str) -> None:
        name = self.settings.done_transition if status == "resolved" else self.settings.reopen_transition
        await self._transition(ref, name)

    async def close(self, ref: ExternalRef) -> None:
        await self._transition(ref, self.settings.done_transition)

    async def _transition(self, ref: ExternalRef, name: str) -> None:
        body = await self.http.json(api.get_transitions(_key(ref)))
        for transition in body.get("transitions") or []:
            if str(transition.get("name", "")).casefold() == name.casefold():
                await self.http.send(api.do_transition(_key(ref), str(transition["id"])))
                return
        # Workflows offer no transition into the status an issue is already in.
        log.info("transition not available; the issue is presumably there already", transition=name)


def _key(ref: ExternalRef) -> str:
    return ref.key or ref.id
