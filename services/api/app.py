"""The composition root of the API: builds the Litestar app and owns its connections' lifespan."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import structlog
from litestar import Litestar
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import OpenAPIType, Schema
from litestar.types import LifeSpanReceive, LifeSpanScope, LifeSpanSend, Receive, Scope, Send

from services.api import background
from services.api.alerts.fastpath import alert_routes
from services.api.alerts.pagerduty import RoutingKeys
from services.api.alerts.routes import alertmanager_webhook, enqueue
from services.api.alerts.service import AlertIntake
from services.api.background import supervise
from services.api.console.live import LiveFeed, StreamCaps
from services.api.console.routes import console_router
from services.api.console.stream import incident_stream
from services.api.delivery.eventhandler_client import EventHandlerClient, NatsLink
from services.api.delivery.relay import OutboxRelay
from services.api.delivery.subscriptions import SubscriptionController
from services.api.health import live, ready
from services.api.incidents.domain import (
    MAX_COMMENT_LENGTH,
    MAX_COMMENTS_PER_CHANGE,
    MAX_DEDUP_KEY_LENGTH,
    MAX_LABEL_KEY_LENGTH,
    MAX_LABEL_VALUE_LENGTH,
    MAX_LABELS,
    MAX_MESSAGE_LENGTH,
    MAX_SOURCE_LENGTH,
    NOT_BLANK,
)
from services.api.incidents.fastpath import create_route
from services.api.incidents.links import LinkReader
from services.api.incidents.routes import IncidentController
from services.api.incidents.service import IncidentService
from services.api.integrations.metrics import IntegrationMetrics
from services.api.integrations.routes import ROUTES as TWO_WAY_ROUTES
from services.api.integrations.routes import TwoWay
from services.api.integrations.service import JiraIdentity, OutsideActions
from services.api.settings import ApiSettings
from services.api.storage.db import Db
from services.api.storage.outbox import OutboxStore
from services.api.storage.repository import IncidentRepository, SqlIncidentRepository
from services.api.web.bodies import ALERT_BODIES, STRICT_BODIES
from services.api.web.errors import handle_any, handle_http
from services.api.web.lean import LeanRoutes
from services.api.web.metrics import ApiMetrics, http_metrics, http_metrics_config, metrics_endpoint
from services.api.web.middleware import RequestContextMiddleware
from services.api.webhooks.routes import WebhookController, document_webhook_bodies
from services.api.webhooks.store import WebhookStore
from shared import tracing

log = structlog.get_logger(__name__)


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
    intake: AlertIntake
    routing_keys: RoutingKeys
    live: LiveFeed


def build_components(settings: ApiSettings) -> Components:
    db = Db(settings.database_url, pool_size=settings.db_pool_size)
    link = NatsLink(settings.nats)
    client = EventHandlerClient(link)
    outbox = OutboxStore(db)
    metrics = ApiMetrics()
    relay = OutboxRelay(
        outbox,
        client,
        batch_size=settings.relay_batch_size,
        max_backoff=settings.relay_retry_max_seconds,
        metrics=metrics,
    )
    repo = SqlIncidentRepository(
        db,
        on_commit=relay.notify,
        on_created=relay.offer,
        max_group=settings.group_commit_max,
        max_queued=settings.group_commit_queue_max,
    )
    links = LinkReader(link, settings.link_workers)
    intake = AlertIntake(repo)
    live = LiveFeed(
        NatsLink(settings.nats, name="api-live"),
        settings.stream_catchup_max,
        StreamCaps(per_token=settings.stream_max_per_token, total=settings.stream_max),
    )
    return Components(
        db, link, client, outbox, relay, repo, metrics, links, intake, RoutingKeys(settings.integration_keys), live
    )


def create_app(settings: ApiSettings, components: Components | None = None) -> Litestar:
    parts = components or build_components(settings)
    incidents = IncidentService(parts.repo)
    webhooks = WebhookStore(
        parts.link,
        parts.db,
        allow_private=settings.webhook_allow_private,
        secret_overlap=settings.webhook_secret_overlap,
        max_endpoints=settings.webhook_max_endpoints,
    )
    two_way = TwoWay(
        settings.two_way,
        OutsideActions(parts.repo, incidents),
        JiraIdentity(settings.two_way),
        IntegrationMetrics(parts.metrics.registry),
    )

    parts.metrics.watch_relay(parts.relay.health)

    @contextlib.asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        if not settings.tokens:
            log.critical(
                "API_TOKENS is unset: every route is open to anyone who reaches this port (local use only)",
                host=settings.host,
                port=settings.port,
            )
        await parts.db.connect()
        await parts.link.start()
        await parts.live.link.start()
        stop, metrics = asyncio.Event(), parts.metrics
        relay_task = asyncio.create_task(parts.relay.run(stop), name="outbox-relay")
        housekeeping = asyncio.create_task(
            supervise("housekeeping", partial(background.housekeeping, parts.repo, metrics=metrics), stop, metrics),
            name="housekeeping",
        )
        auto_resolve = asyncio.create_task(
            supervise(
                "auto-resolve",
                partial(background.auto_resolve, parts.intake, settings.auto_resolve, metrics=metrics),
                stop,
                metrics,
            ),
            name="alert-auto-resolve",
        )
        try:
            yield
        finally:
            stop.set()
            await parts.repo.creates.wait_idle()  # every queued create is answered before the database closes
            await asyncio.gather(relay_task, housekeeping, auto_resolve, return_exceptions=True)
            if parts.link.connected:
                await parts.relay.flush(timeout=5.0)
            await parts.link.close()
            await parts.live.link.close()
            await parts.db.disconnect()

    app = IncidentsApp(
        route_handlers=[
            IncidentController,
            incident_stream,
            SubscriptionController,
            WebhookController,
            enqueue,
            alertmanager_webhook,
            *TWO_WAY_ROUTES,
            live,
            ready,
            metrics_endpoint,
            console_router(auth_required=bool(settings.tokens)),
        ],
        dependencies={
            "repo": Provide(lambda: parts.repo, sync_to_thread=False),
            "incidents": Provide(lambda: incidents, sync_to_thread=False),
            "db": Provide(lambda: parts.db, sync_to_thread=False),
            "link": Provide(lambda: parts.link, sync_to_thread=False),
            "outbox_store": Provide(lambda: parts.outbox, sync_to_thread=False),
            "eventhandler": Provide(lambda: parts.client, sync_to_thread=False),
            "api_metrics": Provide(lambda: parts.metrics, sync_to_thread=False),
            "link_reader": Provide(lambda: parts.links, sync_to_thread=False),
            "intake": Provide(lambda: parts.intake, sync_to_thread=False),
            "routing_keys": Provide(lambda: parts.routing_keys, sync_to_thread=False),
            "webhooks": Provide(lambda: webhooks, sync_to_thread=False),
            "relay": Provide(lambda: parts.relay, sync_to_thread=False),
            "settings": Provide(lambda: settings, sync_to_thread=False),
            "live_feed": Provide(lambda: parts.live, sync_to_thread=False),
            "two_way": Provide(lambda: two_way, sync_to_thread=False),
        },
        lifespan=[lifespan],
        middleware=[
            DefineMiddleware(RequestContextMiddleware, tokens=settings.tokens, metrics=parts.metrics),
            http_metrics(),
        ],
        exception_handlers={HTTPException: handle_http, Exception: handle_any},
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(title="Incidents API", version="0.1.0", path="/schema"),
        signature_types=[
            IncidentRepository,
            IncidentService,
            Db,
            NatsLink,
            OutboxStore,
            EventHandlerClient,
            ApiMetrics,
            LinkReader,
            AlertIntake,
            RoutingKeys,
            WebhookStore,
            OutboxRelay,
            ApiSettings,
            LiveFeed,
            TwoWay,
        ],
        plugins=_tracing_plugins(),
        debug=False,
        logging_config=None,  # shared.logging configures stdlib and structlog once, in __main__
    )
    _document_strict_bodies(app)
    document_webhook_bodies(app.openapi_schema.components.schemas or {})
    app.lean_routes = LeanRoutes(
        [*alert_routes(parts.intake, parts.routing_keys), create_route(incidents)],
        tokens=settings.tokens,
        max_body_bytes=settings.max_body_bytes,
        prometheus=http_metrics_config(),
    )
    return app


class IncidentsApp(Litestar):
    """The Litestar app, with the lean routes in front of its request machinery (services/api/web/lean.py):
    the alert routes and creates. The routes stay registered for the OpenAPI document and refusals."""

    lean_routes: LeanRoutes | None = None

    async def __call__(
        self,
        scope: Scope | LifeSpanScope,
        receive: Receive | LifeSpanReceive,
        send: Send | LifeSpanSend,
    ) -> None:
        route = self.lean_routes.route_of(scope) if self.lean_routes is not None else None
        if route is None:
            await super().__call__(scope, receive, send)
        else:
            await route(scope, receive, send, super().__call__)  # type: ignore[arg-type]


def _tracing_plugins() -> list[Any]:
    """Litestar's OpenTelemetry plugin (the ASGI instrumentation), only when traces are exported."""
    if not tracing.recording():
        return []
    from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin

    # One server span per request: the ASGI receive/send spans would triple the spans for nothing.
    config = OpenTelemetryConfig(exclude=["/health", "/metrics", "/ui"], exclude_spans=["receive", "send"])
    return [OpenTelemetryPlugin(config)]


TEXT_LIMITS = {
    "message": MAX_MESSAGE_LENGTH,
    "comment": MAX_COMMENT_LENGTH,
    "comments": MAX_COMMENT_LENGTH,
    "source": MAX_SOURCE_LENGTH,
    "dedup_key": MAX_DEDUP_KEY_LENGTH,
}


def _document_strict_bodies(app: Litestar) -> None:
    """Write into the schema the rules the bodies enforce, so that schema-valid input is always accepted."""
    schemas = app.openapi_schema.components.schemas or {}
    for name, schema in schemas.items():
        if isinstance(schema, Schema) and name in ALERT_BODIES:
            _document_alert_body(name, schema)
        if not isinstance(schema, Schema) or name not in STRICT_BODIES:
            continue
        schema.additional_properties = False  # bodies are decoded with forbid_unknown_fields
        labels = (schema.properties or {}).get("labels")
        if isinstance(labels, Schema):
            for variant in labels.one_of or [labels]:
                if isinstance(variant, Schema) and variant.type == OpenAPIType.OBJECT:
                    _limit_labels(variant)
        if name == "UpdateIncident":
            schema.min_properties = 1  # an empty PUT is a 400
        for field, limit in TEXT_LIMITS.items():
            prop = (schema.properties or {}).get(field)
            if isinstance(prop, Schema):
                for variant in prop.one_of or [prop]:
                    if isinstance(variant, Schema) and variant.type != OpenAPIType.NULL:
                        _limit_text(variant, limit)


def _limit_labels(schema: Schema) -> None:
    schema.max_properties = MAX_LABELS
    schema.property_names = Schema(type=OpenAPIType.STRING, min_length=1, max_length=MAX_LABEL_KEY_LENGTH)
    schema.additional_properties = Schema(type=OpenAPIType.STRING, max_length=MAX_LABEL_VALUE_LENGTH)


def _document_alert_body(name: str, schema: Schema) -> None:
    """Keys the intake refuses when blank (Alertmanager's groupKey, PagerDuty's dedup_key)."""
    field = {"Notification": "groupKey", "PagerDutyEvent": "dedup_key"}.get(name)
    prop = (schema.properties or {}).get(field or "")
    for variant in (prop.one_of or [prop]) if isinstance(prop, Schema) else []:
        if isinstance(variant, Schema) and variant.type != OpenAPIType.NULL:
            variant.pattern = NOT_BLANK


def _limit_text(schema: Schema, limit: int) -> None:
    if isinstance(schema.items, Schema):  # a list of comments
        schema.min_items, schema.max_items = 1, MAX_COMMENTS_PER_CHANGE
        schema = schema.items
    schema.pattern, schema.max_length = NOT_BLANK, limit
