"""The alert routes' lean path (services/api/web/lean.py): `POST /integrations/alertmanager` and
`POST /v2/enqueue` decoded into the routes' own structs and handed to the routes' own intake functions.
Accepted alerts log their access line at debug: they are the storm."""

from __future__ import annotations

import msgspec

from services.api.alerts import alertmanager, pagerduty
from services.api.alerts.routes import accept_event, accept_notification
from services.api.alerts.service import AlertIntake
from services.api.incidents.domain import DomainError
from services.api.incidents.events import Origin
from services.api.web.errors import TOO_DEEP, is_too_deep
from services.api.web.lean import ENCODER, Answer, Apply, LeanRequest, LeanRoute, error_answer

ALERTMANAGER_PATH = "/integrations/alertmanager"
ENQUEUE_PATH = "/v2/enqueue"
_NOTIFICATION = msgspec.json.Decoder(alertmanager.Notification)
_EVENT = msgspec.json.Decoder(pagerduty.PagerDutyEvent)


def alert_routes(intake: AlertIntake, routing_keys: pagerduty.RoutingKeys) -> list[LeanRoute]:
    def notification(request: LeanRequest) -> Apply | None:
        try:
            note = _NOTIFICATION.decode(request.body)
            alertmanager.dedup_key(note)  # a blank groupKey: the route's 400
        except (msgspec.DecodeError, DomainError, RecursionError):
            return None

        async def apply(origin: Origin) -> Answer:
            try:
                result = await accept_notification(note, origin, intake)
            except Exception as exc:
                return error_answer(exc)
            return Answer(200, ENCODER.encode(result))

        return apply

    def event(request: LeanRequest) -> Apply | None:
        try:
            event = _EVENT.decode(request.body)
        except (msgspec.DecodeError, RecursionError):
            return None
        integration = routing_keys.integration(event.routing_key)
        if integration is None or pagerduty.problems(event):
            return None

        async def apply(origin: Origin) -> Answer:
            try:
                accepted = await accept_event(event, integration, origin, intake)
            except DomainError as exc:  # PagerDuty's shape, as the route answers it
                return Answer(400, ENCODER.encode(pagerduty.invalid(str(exc))))
            except Exception as exc:
                if is_too_deep(exc):
                    return Answer(400, ENCODER.encode(pagerduty.invalid(TOO_DEEP)))
                return error_answer(exc)
            return Answer(202, ENCODER.encode(accepted))

        return apply

    return [
        LeanRoute(ALERTMANAGER_PATH, notification, quiet=True),
        LeanRoute(ENQUEUE_PATH, event, bearer=False, quiet=True),
    ]
