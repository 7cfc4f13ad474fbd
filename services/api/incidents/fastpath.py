"""`POST /incident/` on the lean path (services/api/web/lean.py): the body decoded into the route's own
`CreateIncident`, the Idempotency-Key checked as the route checks it, and the route's own service call."""

from __future__ import annotations

import msgspec

from services.api.incidents.domain import DomainError
from services.api.incidents.events import Origin
from services.api.incidents.routes import answer_headers
from services.api.incidents.schemas import CreateIncident
from services.api.incidents.service import IncidentService, RequestKey
from services.api.storage.repository import fingerprint
from services.api.web.errors import BadRequest
from services.api.web.lean import Answer, Apply, LeanRequest, LeanRoute, error_answer
from services.api.web.params import idempotency_key_of

CREATE_PATH = "/incident"
_CREATE = msgspec.json.Decoder(CreateIncident)


def create_route(incidents: IncidentService) -> LeanRoute:
    def create(request: LeanRequest) -> Apply | None:
        try:
            key = idempotency_key_of(request.headers.get(b"idempotency-key"))
            data = _CREATE.decode(request.body)
            fields = data.alert_fields()
        except (BadRequest, msgspec.DecodeError, DomainError, RecursionError):
            return None
        request_key = None if key is None else RequestKey(key, fingerprint("POST", request.path, request.body))

        async def apply(origin: Origin) -> Answer:
            try:
                answer = await incidents.create(data.message, fields, origin, request_key)
            except Exception as exc:
                return error_answer(exc)
            headers = tuple((name.lower().encode(), value.encode()) for name, value in answer_headers(answer).items())
            return Answer(answer.status_code, answer.body, headers)

        return apply

    return LeanRoute(CREATE_PATH, create)
