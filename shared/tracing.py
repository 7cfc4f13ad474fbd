"""OpenTelemetry traces for every service: OTLP/HTTP protobuf export when configured, W3C context in NATS headers.

Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set: then the global tracer
provider stays the API's no-op one, every span below is a non-recording stub and nothing is exported.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping

from opentelemetry import context, propagate, trace
from opentelemetry.trace import Link, SpanKind, StatusCode

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
_enabled = False
TRACER_NAME = "incidents"
TRACEPARENT = "traceparent"

__all__ = [
    "Link",
    "SpanKind",
    "StatusCode",
    "configure_tracing",
    "extract",
    "inject",
    "traceparent_of_current_span",
    "tracer",
]


def tracing_enabled(env: Mapping[str, str]) -> bool:
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return False
    return any(env.get(name, "").strip() for name in ENDPOINT_VARIABLES)


def configure_tracing(service_name: str, env: MutableMapping[str, str] | None = None) -> bool:
    """Install an SDK tracer provider exporting over OTLP/HTTP protobuf; False (and nothing done) when unset.

    `service_name` is the default of `service.name`; OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win.
    The exporter reads the standard OTEL_EXPORTER_OTLP_* variables (endpoint, headers, timeout, compression).
    """
    env = os.environ if env is None else env
    if not tracing_enabled(env):
        return False
    # The stable HTTP attribute names (http.request.method, http.response.status_code) in the ASGI middleware;
    # read once, when the instrumentation first initialises, so set before the app is built.
    env.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    attributes = {} if env.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service_name}
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    global _enabled
    _enabled = True
    return True


def shutdown_tracing() -> None:
    """Export what is buffered (the SDK also does it at exit; this is for loops that end before)."""
    provider = trace.get_tracer_provider()
    shutdown = getattr(provider, "shutdown", None)
    if shutdown is not None:
        shutdown()


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


def recording() -> bool:
    """Whether spans are recorded at all: lets hot paths skip building attributes and links."""
    return _enabled


def inject(headers: dict[str, str], ctx: context.Context | None = None) -> dict[str, str]:
    """Write the W3C trace context (of `ctx`, else the current span) into NATS headers."""
    propagate.inject(headers, context=ctx)
    return headers


def extract(headers: Mapping[str, str] | None) -> context.Context:
    return propagate.extract(dict(headers or {}))


def from_traceparent(traceparent: str | None) -> context.Context:
    """The context of a traceparent carried in an event (CloudEvents' distributed tracing extension)."""
    return extract({TRACEPARENT: traceparent} if traceparent else None)


def link_to(traceparent: str | None) -> Link | None:
    span = trace.get_current_span(from_traceparent(traceparent))
    span_context = span.get_span_context()
    return Link(span_context) if span_context.is_valid else None


def link_to_current_span() -> list[Link] | None:
    span_context = trace.get_current_span().get_span_context()
    return [Link(span_context)] if span_context.is_valid else None


def traceparent_of_current_span() -> str | None:
    """The current span as a traceparent, or None when no span records (tracing off)."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    return f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-{int(span_context.trace_flags):02x}"
