"""The fields every log line of a task carries (service, request_id, incident_id, ...).

One variable holds one dict, never changed in place: binding is one `set`, and a line merges one dict.
structlog's own contextvars keep one variable per key and walk the whole context for every line, which cost
more than rendering the line.
"""

from __future__ import annotations

import contextvars
from collections.abc import MutableMapping
from types import TracebackType
from typing import Any

_CONTEXT: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("log_context", default={})  # noqa: B039


def bind(**fields: Any) -> None:
    """Add fields to every following line of this task (and of the tasks it starts)."""
    _CONTEXT.set({**_CONTEXT.get(), **fields})


def unbind(*keys: str) -> None:
    context = _CONTEXT.get()
    if any(key in context for key in keys):
        _CONTEXT.set({k: v for k, v in context.items() if k not in keys})


def clear() -> None:
    _CONTEXT.set({})


def bound_fields() -> dict[str, Any]:
    return dict(_CONTEXT.get())


class bound:
    """The fields on every line logged inside the block; the ones before are back afterwards."""

    __slots__ = ("_fields", "_token")

    def __init__(self, **fields: Any) -> None:
        self._fields = fields

    def __enter__(self) -> None:
        self._token = _CONTEXT.set({**_CONTEXT.get(), **self._fields})

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        _CONTEXT.reset(self._token)


def merge_context(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """The bound fields, after the line's own (which win)."""
    for key, value in _CONTEXT.get().items():
        if key not in event_dict:
            event_dict[key] = value
    return event_dict
