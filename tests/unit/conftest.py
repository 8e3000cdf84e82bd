"""Fixtures for the unit tests of tracing: spans kept in memory by a provider of their own."""

from collections.abc import Iterator
from typing import Any

import pytest

from shared.tracing import Tracing


@pytest.fixture
def exporter() -> Any:
    # Imported here: the rest of the unit tests never load OpenTelemetry.
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    return InMemorySpanExporter()


@pytest.fixture
def tracing(exporter: Any) -> Iterator[Tracing]:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = Tracing(provider)
    yield tracing
    tracing.shutdown()
