"""`Tracing`: a no-op that imports nothing of OpenTelemetry when off; spans and W3C context round trips when on."""

import subprocess
import sys

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.settings import Settings
from shared.tracing import NO_SPAN, Tracing
from tests.stack import ROOT

# Run as if the `tracing` extra were not installed: the SDK and exporter imports fail (FastAPI itself depends on
# opentelemetry-api, so the API package is always there).
OFF_CHECK = """
import importlib.abc
import sys


class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.startswith(("opentelemetry.sdk", "opentelemetry.exporter")):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None


sys.meta_path.insert(0, NotInstalled())
from api.app import create_app
from shared.settings import Settings
from shared.tracing import Tracing
import worker.task

tracing = Tracing.build(Settings(), "llamaq-test")
create_app(Settings(redis_url="redis://127.0.0.1:1"))
with tracing.span("a") as span:
    span.set_attribute("k", 1)
tracing.start("b").end()
assert not tracing.on and tracing.carrier() == {} and tracing.extract({"traceparent": "x"}) is None
tracing.shutdown()
"""


def test_off_is_the_default_and_runs_without_opentelemetry_installed() -> None:
    assert Settings().tracing == "off"
    subprocess.run([sys.executable, "-c", OFF_CHECK], cwd=ROOT, check=True, timeout=60)


def test_off_spans_are_no_ops() -> None:
    tracing = Tracing()
    assert tracing.start("x") is NO_SPAN and tracing.context_of(NO_SPAN) is None


def test_the_carrier_names_the_current_span_and_extracts_as_its_parent(
    tracing: Tracing, exporter: InMemorySpanExporter
) -> None:
    with tracing.span("outer", kind="producer"):
        carrier = tracing.carrier()
    assert set(carrier) == {"traceparent"}
    tracing.start("child", tracing.extract(carrier), start=1.5).end()
    outer, child = sorted(exporter.get_finished_spans(), key=lambda span: span.name != "outer")
    assert child.parent is not None and child.parent.span_id == outer.context.span_id
    assert child.context.trace_id == outer.context.trace_id and child.start_time == 1_500_000_000
    version, trace_id, span_id, flags = carrier["traceparent"].split("-")
    assert (version, trace_id, span_id) == ("00", f"{outer.context.trace_id:032x}", f"{outer.context.span_id:016x}")
    assert int(flags, 16) & 1  # sampled


def test_a_missing_or_empty_traceparent_extracts_nothing(tracing: Tracing) -> None:
    assert tracing.extract({}) is None
    assert tracing.extract({"traceparent": None, "tracestate": "a=b"}) is None


def test_an_exception_is_recorded_on_the_current_span(tracing: Tracing, exporter: InMemorySpanExporter) -> None:
    with pytest.raises(ValueError), tracing.span("failing"):
        raise ValueError("boom")
    (span,) = exporter.get_finished_spans()
    assert not span.status.is_ok and span.events[0].name == "exception"
