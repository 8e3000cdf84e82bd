"""OpenTelemetry tracing, off by default: one process's tracer and OTLP/HTTP exporter, and the W3C trace context
(`traceparent`, `tracestate`) a job carries from the API to its worker, so one trace crosses processes and nodes.

Without `LLAMAQ_TRACING=otlp` nothing of OpenTelemetry is imported (the `tracing` extra may be absent) and every
span is a no-op. The standard variables apply when on: `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`),
`OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_BSP_SCHEDULE_DELAY`.
"""

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import Any, Literal, Protocol

from shared.settings import Settings

Kind = Literal["internal", "server", "producer", "consumer"]
# The W3C Trace Context fields, in HTTP headers and in the job payload alike.
FIELDS = ("traceparent", "tracestate")


class Span(Protocol):
    def set_attribute(self, key: str, value: Any) -> None: ...
    def update_name(self, name: str) -> None: ...
    def end(self, end_time: int | None = None) -> None: ...


class _NoSpan:
    def set_attribute(self, key: str, value: Any) -> None:
        return None

    def update_name(self, name: str) -> None:
        return None

    def end(self, end_time: int | None = None) -> None:
        return None


NO_SPAN: Span = _NoSpan()


def nanos(unix_seconds: float) -> int:
    """A Unix time in seconds as OpenTelemetry's span timestamps (nanoseconds)."""
    return int(unix_seconds * 1_000_000_000)


class Tracing:
    """One process's tracer, or none (the default): spans, and the trace context jobs carry."""

    def __init__(self, provider: Any = None) -> None:
        self._provider = provider
        self._tracer = provider.get_tracer("llamaq") if provider is not None else None

    @classmethod
    def build(cls, settings: Settings, service: str) -> "Tracing":
        """Spans exported over OTLP/HTTP in batches when `LLAMAQ_TRACING=otlp`; a no-op tracer otherwise."""
        if settings.tracing == "off":
            return cls()
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        # Attributes given here win over OTEL_SERVICE_NAME: name the service only when the operator did not.
        attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service}
        provider = TracerProvider(resource=Resource.create(attributes))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        return cls(provider)

    @property
    def on(self) -> bool:
        return self._tracer is not None

    def start(
        self,
        name: str,
        parent: Any = None,
        start: float | None = None,
        kind: Kind = "internal",
        attributes: Mapping[str, Any] | None = None,
    ) -> Span:
        """A span the caller ends, not made current: a child of `parent` (a context), else of the current span."""
        if self._tracer is None:
            return NO_SPAN
        from opentelemetry.trace import SpanKind

        return self._tracer.start_span(
            name,
            context=parent,
            kind=SpanKind[kind.upper()],
            attributes=dict(attributes or {}),
            start_time=None if start is None else nanos(start),
        )

    @contextlib.contextmanager
    def span(
        self, name: str, parent: Any = None, kind: Kind = "internal", attributes: Mapping[str, Any] | None = None
    ) -> Iterator[Span]:
        """A span current for the block (spans and `carrier()` inside it are its children); an exception is
        recorded on it. Only in plain functions and coroutines: an async generator may resume in another context."""
        if self._tracer is None:
            yield NO_SPAN
            return
        from opentelemetry.trace import SpanKind

        with self._tracer.start_as_current_span(
            name, context=parent, kind=SpanKind[kind.upper()], attributes=dict(attributes or {})
        ) as span:
            yield span

    def context_of(self, span: Span) -> Any:
        """A context whose current span is `span`: the parent to give its children made later."""
        if self._tracer is None:
            return None
        from opentelemetry import trace

        return trace.set_span_in_context(span)  # type: ignore[arg-type]

    def failed(self, span: Span, description: str) -> None:
        """Mark `span` as ended in error (OpenTelemetry's status), with a short description, never user text."""
        if self._tracer is None:
            return
        from opentelemetry.trace import Status, StatusCode

        span.set_status(Status(StatusCode.ERROR, description))  # type: ignore[attr-defined]

    def carrier(self) -> dict[str, str]:
        """The current trace context as W3C fields (`traceparent`, and `tracestate` if any); empty when off."""
        if self._tracer is None:
            return {}
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        carrier: dict[str, str] = {}
        TraceContextTextMapPropagator().inject(carrier)
        return carrier

    def extract(self, carrier: Mapping[str, str | None]) -> Any:
        """The context `carrier` (headers, a job's fields) names, to parent spans with; None when off or absent."""
        found = {key: value for key in FIELDS if (value := carrier.get(key))}
        if self._tracer is None or "traceparent" not in found:
            return None
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        return TraceContextTextMapPropagator().extract(found)

    def shutdown(self) -> None:
        """Export the spans still buffered, then stop the exporter (at the end of the process)."""
        if self._provider is not None:
            self._provider.shutdown()
