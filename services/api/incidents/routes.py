"""Incident routes: the seed-compatible CRUD, the actions, and the list."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, Response, delete, get, post, put
from litestar.params import Parameter

from services.api.incidents.domain import (
    MAX_DEDUP_KEY_LENGTH,
    MAX_SOURCE_LENGTH,
    Acknowledged,
    Incident,
    Severity,
    Status,
)
from services.api.incidents.links import LinkReader
from services.api.incidents.schemas import (
    ActionNote,
    AddComment,
    Created,
    CreateIncident,
    IncidentPage,
    IncidentView,
    SeverityName,
    Timeline,
    TimelineItem,
    UpdateIncident,
)
from services.api.incidents.service import Answer, IncidentService, RequestKey
from services.api.storage.db import from_micros
from services.api.storage.repository import IncidentRepository, ListFilter, fingerprint
from services.api.web import params
from services.api.web.bodies import StatusResponse
from services.api.web.errors import BadRequest, error_response
from services.api.web.openapi import ERRORS

JSON = "application/json"
CURSOR_PATTERN = r"^([0-4]\.(yes|no)\.)?[1-9][0-9]{0,18}$"
MAX_SEARCH_LENGTH = 200
SEVERITY_RANKS = {Severity.CRITICAL: 0, Severity.ERROR: 1, Severity.WARNING: 2, Severity.INFO: 3, None: 4}
IncidentId = Annotated[
    str, Parameter(pattern=r"^[1-9][0-9]{0,17}$", description="The incident id, a positive integer", examples=None)
]


async def _request_key(request: Request[Any, Any, Any]) -> RequestKey | None:
    key = params.idempotency_key(request)
    if key is None:
        return None
    return RequestKey(key, fingerprint(request.method, request.url.path, await request.body()))


async def _note(request: Request[Any, Any, Any]) -> str | None:
    """An action's optional body `{"comment": "..."}`; any other body is a 400, never dropped in silence."""
    body = await request.body()
    if not body.strip():
        return None
    try:
        note = msgspec.json.decode(body, type=ActionNote)
    except msgspec.DecodeError as error:
        raise BadRequest(f'the body must be empty or {{"comment": "..."}}: {error}') from None
    return note.comment


def answer_headers(answer: Answer) -> dict[str, str]:
    return {"Idempotent-Replayed": "true"} if answer.replayed else {"ETag": f'"{answer.version}"'}


def _respond(answer: Answer) -> Response[Any]:
    return Response(answer.body, status_code=answer.status_code, media_type=JSON, headers=answer_headers(answer))


class IncidentController(Controller):
    path = "/incident"
    tags = ["incidents"]

    @post("/", status_code=200, summary="Create an incident", responses=ERRORS)
    async def create(
        self, request: Request[Any, Any, Any], data: CreateIncident, incidents: IncidentService
    ) -> Response[Created]:
        answer = await incidents.create(
            data.message, data.alert_fields(), params.origin(request), await _request_key(request)
        )
        return _respond(answer)

    @get(
        "/",
        summary="List incidents, newest first (or most severe first); search and filter",
        description=(
            "`q` finds incidents whose message, source, labels or comments contain every word given (as word "
            "prefixes). `labels.<name>=<value>` keeps incidents with that label, and may be repeated for several "
            "labels. `sort=severity` lists the most severe first, unacknowledged before acknowledged, then the newest. "
            "Unknown parameters are a 400."
        ),
        responses=ERRORS,
    )
    async def list_incidents(
        self,
        request: Request[Any, Any, Any],
        repo: IncidentRepository,
        status: Literal["unresolved", "resolved"] | None = None,
        acknowledged: Literal["yes", "no"] | None = None,
        severity: SeverityName | None = None,
        source: str | None = Parameter(default=None, max_length=MAX_SOURCE_LENGTH),
        dedup_key: str | None = Parameter(default=None, max_length=MAX_DEDUP_KEY_LENGTH),
        q: str | None = Parameter(default=None, max_length=MAX_SEARCH_LENGTH, description="Words to search for"),
        sort: Literal["newest", "severity"] = "newest",
        limit: int = Parameter(default=50, ge=1, le=200),
        cursor: str | None = Parameter(
            default=None, pattern=CURSOR_PATTERN, description="`next_cursor` of the previous page"
        ),
    ) -> IncidentPage:
        labels = params.list_query(request)
        by_severity = sort == "severity"
        before_rank, before_acknowledged, before_id = (None, None, None)
        if cursor:
            before_rank, before_acknowledged, before_id = params.decode_cursor(cursor, ranked=by_severity)
        query = ListFilter(
            status=Status(status) if status else None,
            acknowledged=Acknowledged(acknowledged) if acknowledged else None,
            severity=Severity(severity) if severity else None,
            source=source,
            dedup_key=dedup_key,
            before_id=before_id,
            limit=limit + 1,
            text=q if q and q.strip() else None,
            labels=labels,
            by_severity=by_severity,
            before_rank=before_rank,
            before_acknowledged=Acknowledged(before_acknowledged) if before_acknowledged else None,
        )
        found = await repo.list_incidents(query)
        page = found[:limit]
        next_cursor = None
        if len(found) > limit and page[-1].id:
            rank = SEVERITY_RANKS[page[-1].alert.severity] if by_severity else None
            next_cursor = params.encode_cursor(page[-1].id, rank, page[-1].acknowledged.value)
        activity = await repo.activity(page)
        return IncidentPage(
            items=[IncidentView.of(i, activity=activity.get(i.id or 0)) for i in page], next_cursor=next_cursor
        )

    @get("/{incident_id:str}", summary="Get one incident", responses=ERRORS)
    async def read(
        self, incident_id: IncidentId, repo: IncidentRepository, link_reader: LinkReader
    ) -> Response[IncidentView]:
        incident = await repo.get(params.incident_id(incident_id))
        if incident is None or incident.id is None:
            return error_response(404, "incident not found")
        activity = await repo.activity([incident])
        view = IncidentView.of(incident, await link_reader.links(incident.id), activity.get(incident.id))
        return Response(view, headers={"ETag": f'"{incident.version}"'})

    @get(
        "/{incident_id:str}/timeline",
        summary="Every change of the incident, oldest first (kept after delete)",
        responses=ERRORS,
    )
    async def timeline(self, incident_id: IncidentId, repo: IncidentRepository) -> Response[Timeline]:
        wanted = params.incident_id(incident_id)
        entries = await repo.timeline(wanted)
        if not entries:
            return error_response(404, "incident not found")
        items = [
            TimelineItem(
                time=from_micros(e.time),
                type=f"incident.{e.type}",
                version=e.version,
                actor=e.actor,
                event_id=e.event_id,
                request_id=e.request_id,
                comment=e.comment,
            )
            for e in entries
        ]
        return Response(Timeline(incident_id=wanted, items=items))

    @put("/{incident_id:str}", summary="Update message, acknowledgement, status and add comments", responses=ERRORS)
    async def update(
        self, request: Request[Any, Any, Any], incident_id: IncidentId, data: UpdateIncident, incidents: IncidentService
    ) -> Response[StatusResponse]:
        update = data.to_domain()
        update.validate()
        return await self._change(
            request, incidents, incident_id, "INCIDENT UPDATED", lambda i, now: i.apply(update, now)
        )

    @delete("/{incident_id:str}", status_code=200, summary="Delete an incident", responses=ERRORS)
    async def remove(
        self, request: Request[Any, Any, Any], incident_id: IncidentId, incidents: IncidentService
    ) -> Response[StatusResponse]:
        return await self._change(request, incidents, incident_id, "INCIDENT DELETED", lambda i, now: i.delete(now))

    @post("/{incident_id:str}/acknowledge", status_code=200, summary="Acknowledge", responses=ERRORS)
    async def acknowledge(
        self, request: Request[Any, Any, Any], incident_id: IncidentId, incidents: IncidentService
    ) -> Response[StatusResponse]:
        return await self._noted(request, incidents, incident_id, "INCIDENT ACKNOWLEDGED", Incident.acknowledge)

    @post(
        "/{incident_id:str}/unacknowledge", status_code=200, summary="Take the acknowledgement back", responses=ERRORS
    )
    async def unacknowledge(
        self, request: Request[Any, Any, Any], incident_id: IncidentId, incidents: IncidentService
    ) -> Response[StatusResponse]:
        return await self._noted(request, incidents, incident_id, "INCIDENT UNACKNOWLEDGED", Incident.unacknowledge)

    @post("/{incident_id:str}/resolve", status_code=200, summary="Resolve", responses=ERRORS)
    async def resolve(
        self, request: Request[Any, Any, Any], incident_id: IncidentId, incidents: IncidentService
    ) -> Response[StatusResponse]:
        return await self._noted(request, incidents, incident_id, "INCIDENT RESOLVED", Incident.resolve)

    @post("/{incident_id:str}/reopen", status_code=200, summary="Reopen a resolved incident", responses=ERRORS)
    async def reopen(
        self, request: Request[Any, Any, Any], incident_id: IncidentId, incidents: IncidentService
    ) -> Response[StatusResponse]:
        return await self._noted(request, incidents, incident_id, "INCIDENT REOPENED", Incident.reopen)

    @post("/{incident_id:str}/comments", status_code=200, summary="Add a comment", responses=ERRORS)
    async def add_comment(
        self, request: Request[Any, Any, Any], incident_id: IncidentId, data: AddComment, incidents: IncidentService
    ) -> Response[StatusResponse]:
        return await self._change(
            request, incidents, incident_id, "COMMENT ADDED", lambda i, now: i.comment(data.comment, now)
        )

    async def _noted(
        self,
        request: Request[Any, Any, Any],
        incidents: IncidentService,
        raw_id: str,
        done: str,
        transition: Callable[[Incident, Any], None],
    ) -> Response[Any]:
        """An action that may carry a note: the note becomes a comment in the same change."""
        note = await _note(request)

        def act(incident: Incident, now: Any) -> None:
            transition(incident, now)
            if note is not None:
                incident.comment(note, now)

        return await self._change(request, incidents, raw_id, done, act)

    async def _change(
        self,
        request: Request[Any, Any, Any],
        incidents: IncidentService,
        raw_id: str,
        done: str,
        action: Callable[[Incident, Any], None],
    ) -> Response[Any]:
        key = await _request_key(request) if request.method == "POST" else None
        answer = await incidents.change(
            params.incident_id(raw_id),
            action,
            done,
            params.origin(request),
            expected_version=params.if_match(request),
            key=key,
        )
        return _respond(answer)
