"""Traces are exported only when an OTLP endpoint is configured, and the W3C context round-trips NATS headers."""

from __future__ import annotations

from shared import tracing


def test_tracing_is_off_unless_an_otlp_endpoint_is_configured() -> None:
    assert not tracing.tracing_enabled({})
    assert not tracing.configure_tracing("incidents-api", {})
    assert tracing.tracing_enabled({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert tracing.tracing_enabled({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"})
    assert not tracing.tracing_enabled({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"})
    assert not tracing.tracing_enabled({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"})


def test_a_traceparent_carried_in_an_event_becomes_the_parent_context() -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    link = tracing.link_to(traceparent)
    assert link is not None
    assert f"{link.context.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
    assert f"{link.context.span_id:016x}" == "b7ad6b7169203331"
    assert tracing.inject({}, tracing.from_traceparent(traceparent)) == {"traceparent": traceparent}
    assert tracing.link_to(None) is None
    assert tracing.link_to("not a traceparent") is None
