"""What every endpoint of the micro service shares: decoding a request into its type."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import msgspec

from services.eventhandler.errors import RequestError

T = TypeVar("T")
Work = Callable[[bytes], Awaitable[bytes]]
"""An endpoint's work: the request's bytes in, the reply's bytes out."""


def decode(data: bytes, type_: type[T]) -> T:
    try:
        return msgspec.json.decode(data or b"{}", type=type_)
    except msgspec.DecodeError as exc:
        raise RequestError(f"bad request: {exc}") from None
