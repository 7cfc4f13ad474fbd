"""Errors the endpoints turn into micro error replies, by code.

RequestError            -> "400"  the request is malformed or names unknown things
NotFoundError           -> "404"  the request names something that does not exist
(JetStream unreachable) -> "503"  nats NoRespondersError/TimeoutError, JetStream ServiceUnavailableError
(JetStream API error)   -> "500"
"""

from __future__ import annotations


class RequestError(ValueError):
    """A bad request: never worth retrying unchanged."""

    code = "400"


class NotFoundError(LookupError):
    """The request names something that does not exist."""

    code = "404"
