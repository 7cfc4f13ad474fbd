"""The composition root of the API: builds the Litestar app and owns its connections' lifespan."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from litestar import Litestar
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Schema

from services.api.db import UNAVAILABLE_ERRORS, Db
from services.api.domain import MAX_COMMENT_LENGTH, MAX_COMMENTS_PER_CHANGE, MAX_MESSAGE_LENGTH, NOT_BLANK
from services.api.errors import handle_any, handle_http
from services.api.eventhandler_client import EventHandlerClient, NatsLink
from services.api.links import LinkReader
from services.api.live import LiveFeed
from services.api.metrics import ApiMetrics, metrics_endpoint
from services.api.middleware import RequestContextMiddleware
from services.api.outbox import OutboxStore, micros_ago
from services.api.relay import OutboxRelay
from services.api.repository import IncidentRepository, SqlIncidentRepository
from services.api.routes.health import live, ready
from services.api.routes.incidents import IncidentController
from services.api.routes.stream import incident_stream
from services.api.routes.subscriptions import SubscriptionController
from services.api.schemas import STRICT_BODIES
from services.api.settings import ApiSettings
from services.api.ui.routes import console_router

IDEMPOTENCY_TTL_SECONDS = 24 * 3600


@dataclass
class Components:
    db: Db
    link: NatsLink
    client: EventHandlerClient
    outbox: OutboxStore
    relay: OutboxRelay
    repo: SqlIncidentRepository
    metrics: ApiMetrics
    links: LinkReader
    live: LiveFeed


def build_components(settings: ApiSettings) -> Components:
    db = Db(settings.database_url, pool_size=settings.db_pool_size)
    link = NatsLink(settings.nats)
    client = EventHandlerClient(link)
    outbox = OutboxStore(db)
    metrics = ApiMetrics()
    relay = OutboxRelay(outbox, client, batch_size=settings.relay_batch_size, metrics=metrics)
    repo = SqlIncidentRepository(db, on_commit=relay.notify)
    links = LinkReader(link, settings.link_workers)
    live = LiveFeed(link, settings.stream_catchup_max)
    return Components(db, link, client, outbox, relay, repo, metrics, links, live)


def create_app(settings: ApiSettings, components: Components | None = None) -> Litestar:
    parts = components or build_components(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        await parts.db.connect()
        await parts.link.start()
        stop = asyncio.Event()
        relay_task = asyncio.create_task(parts.relay.run(stop), name="outbox-relay")
        housekeeping = asyncio.create_task(_housekeeping(parts.repo, stop), name="housekeeping")
        try:
            yield
        finally:
            stop.set()
            await asyncio.gather(relay_task, housekeeping, return_exceptions=True)
            if parts.link.connected:
                await parts.relay.flush(timeout=5.0)
            await parts.link.close()
            await parts.db.disconnect()

    app = Litestar(
        route_handlers=[
            IncidentController,
            incident_stream,
            SubscriptionController,
            live,
            ready,
            metrics_endpoint,
            console_router(auth_required=bool(settings.tokens)),
        ],
        dependencies={
            "repo": Provide(lambda: parts.repo, sync_to_thread=False),
            "db": Provide(lambda: parts.db, sync_to_thread=False),
            "link": Provide(lambda: parts.link, sync_to_thread=False),
            "outbox_store": Provide(lambda: parts.outbox, sync_to_thread=False),
            "eventhandler": Provide(lambda: parts.client, sync_to_thread=False),
            "api_metrics": Provide(lambda: parts.metrics, sync_to_thread=False),
            "links": Provide(lambda: parts.links, sync_to_thread=False),
            "live_feed": Provide(lambda: parts.live, sync_to_thread=False),
        },
        lifespan=[lifespan],
        middleware=[DefineMiddleware(RequestContextMiddleware, tokens=settings.tokens, metrics=parts.metrics)],
        exception_handlers={HTTPException: handle_http, Exception: handle_any},
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(title="Incidents API", version="0.1.0", path="/schema"),
        signature_types=[
            IncidentRepository,
            Db,
            NatsLink,
            OutboxStore,
            EventHandlerClient,
            ApiMetrics,
            LinkReader,
            LiveFeed,
        ],
        debug=False,
        logging_config=None,  # shared.logging configures stdlib and structlog once, in __main__
    )
    _document_strict_bodies(app)
    return app


TEXT_LIMITS = {"message": MAX_MESSAGE_LENGTH, "comment": MAX_COMMENT_LENGTH, "comments": MAX_COMMENT_LENGTH}


def _document_strict_bodies(app: Litestar) -> None:
    """Write into the schema the rules the bodies enforce, so that schema-valid input is always accepted."""
    schemas = app.openapi_schema.components.schemas or {}
    for name, schema in schemas.items():
        if not isinstance(schema, Schema) or name not in STRICT_BODIES:
            continue
        schema.additional_properties = False  # bodies are decoded with forbid_unknown_fields
        if name == "UpdateIncident":
            schema.min_properties = 1  # an empty PUT is a 400
        for field, limit in TEXT_LIMITS.items():
            prop = (schema.properties or {}).get(field)
            if isinstance(prop, Schema):
                for variant in prop.one_of or [prop]:
                    if isinstance(variant, Schema):
                        _limit_text(variant, limit)


def _limit_text(schema: Schema, limit: int) -> None:
    if isinstance(schema.items, Schema):  # a list of comments
        schema.min_items, schema.max_items = 1, MAX_COMMENTS_PER_CHANGE
        schema = schema.items
    schema.pattern, schema.max_length = NOT_BLANK, limit


async def _housekeeping(repo: SqlIncidentRepository, stop: asyncio.Event) -> None:
    """Forget idempotency keys after a day."""
    while not stop.is_set():
        with contextlib.suppress(*UNAVAILABLE_ERRORS):
            await repo.prune_idempotency_keys(micros_ago(IDEMPOTENCY_TTL_SECONDS))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=3600)
