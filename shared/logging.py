"""structlog setup: JSON in containers, coloured console on a terminal, secrets redacted everywhere."""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections.abc import MutableMapping
from typing import Any

import msgspec
import structlog
from structlog.processors import format_exc_info

from shared.logcontext import bind, clear, merge_context
from shared.logwriter import LineHandler, LineWriter

_SECRET_KEYS = re.compile(r"(password|passwd|token|secret|authorization|api_key|apikey|credentials)", re.I)
_SECRET_VALUES = re.compile(r"((?:Bearer|Basic)\s+)[A-Za-z0-9._~+/=-]+", re.I)
# Secrets recognisable by their own shape wherever they sit: webhook signing secrets and Slack tokens.
_SECRET_SHAPES = re.compile(r"\bwhsec_[A-Za-z0-9+/=_-]+|\bxox[a-z]-[A-Za-z0-9-]+")
# Whatever the patterns above could match, in a lower-cased line: without any of these words it holds no
# secret. (Lower-casing first: the same search with re.I is ten times slower.)
_MAYBE_SECRET = re.compile(rb"passw(?:or)?d|token|secret|authorization|api_?key|credentials|bearer|basic|whsec_|xox")
REDACTED = "[REDACTED]"
_JSON = msgspec.json.Encoder(enc_hook=str)  # values JSON has no type for (exceptions, paths) as their text


class _Clock:
    """ISO 8601 UTC with microseconds; the date and time up to the second are formatted once per second."""

    __slots__ = ("prefix", "second")

    def __init__(self) -> None:
        self.second = -1
        self.prefix = ""

    def now(self) -> str:
        now = time.time()
        second = int(now)
        if second != self.second:
            self.prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
            self.second = second
        return f"{self.prefix}{int((now - second) * 1_000_000):06d}Z"


_clock = _Clock()
_LEVELS = {"warn": "warning", "exception": "error"}


def stamp(_: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Level and timestamp, as structlog's add_log_level and TimeStamper("iso", utc=True) write them."""
    event_dict["level"] = _LEVELS.get(method_name, method_name)
    event_dict["timestamp"] = _clock.now()
    return event_dict


def _json_line(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> bytes:
    """The whole JSON chain in one processor: a service writes a line per request or event."""
    event_dict = stamp(logger, method_name, merge_context(logger, method_name, event_dict))
    if "exc_info" in event_dict:
        event_dict = format_exc_info(logger, method_name, event_dict)
    return render_json_redacted(logger, method_name, event_dict)


def _json_text(event_dict: Any, **_: Any) -> str:
    return _JSON.encode(event_dict).decode()


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return _SECRET_SHAPES.sub(REDACTED, _SECRET_VALUES.sub(r"\1" + REDACTED, value))
    if isinstance(value, msgspec.Struct):  # its fields, by name, like a dict's keys
        return _redact_value(msgspec.to_builtins(value, enc_hook=str))
    if isinstance(value, dict):
        return {
            k: (REDACTED if isinstance(k, str) and _SECRET_KEYS.search(k) else _redact_value(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact_value(v) for v in value]
    return value


def redact_secrets(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        if _SECRET_KEYS.search(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _redact_value(event_dict[key])
    return event_dict


def render_json_redacted(logger: Any, name: str, event_dict: MutableMapping[str, Any]) -> bytes:
    """The JSON line, secrets redacted. Encoding first and looking for the words a secret comes with keeps
    the walk through every value off the hot path: most lines hold none of them."""
    line = _JSON.encode(event_dict)
    if _MAYBE_SECRET.search(line.lower()) is None:
        return line
    return _JSON.encode(redact_secrets(logger, name, event_dict))


_writer: LineWriter | None = None


def flush_logs() -> None:
    """Write the lines gathered so far (before handing stderr to someone else, and in tests)."""
    if _writer is not None:
        _writer.flush()


def colour_wanted() -> bool:
    """Colours only on a terminal; LOG_COLOUR=1 or 0 decides for a process whose stderr is a pipe (`just dev`)."""
    chosen = os.environ.get("LOG_COLOUR", "").strip().lower()
    if chosen in ("1", "true", "yes"):
        return True
    if chosen in ("0", "false", "no"):
        return False
    return sys.stderr.isatty()


def configure_logging(service: str, *, json: bool | None = None, level: str = "INFO") -> None:
    """Configure structlog and stdlib logging once, in a service's __main__."""
    if json is None:
        json = not sys.stderr.isatty()
    colours = colour_wanted()
    global _writer
    writer = _writer = LineWriter(sys.stderr.buffer) if json else None
    shared = [merge_context, stamp, redact_secrets]
    processors: list[Any] = (
        [_json_line] if json else [*shared, structlog.dev.set_exc_info, structlog.dev.ConsoleRenderer(colors=colours)]
    )
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=(lambda *_: writer) if writer is not None else structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    clear()
    bind(service=service)
    handler = LineHandler(writer) if writer is not None else logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(serializer=_json_text)
                if json
                else structlog.dev.ConsoleRenderer(colors=colours),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
