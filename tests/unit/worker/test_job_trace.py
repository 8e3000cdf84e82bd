"""A job's spans from its clock: `queue.wait` and `job` under the carried context, `prompt` and `decode` under `job`."""

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.payload import JobPayload
from shared.tracing import Tracing
from worker import job_trace
from worker.metrics import JobClock


def _job(tracing: Tracing) -> JobPayload:
    with tracing.span("admission"):
        carrier = tracing.carrier()
    return JobPayload(id="job_1", kind="chat", model="m", lane="interactive", created=0, **carrier)


def _clock(first: float | None) -> JobClock:
    clock = JobClock(enqueued=100.0)
    clock.claimed, clock.first, clock.last = 100.5, first, None if first is None else 102.0
    clock.prompt_tokens, clock.completion_tokens = 12, 0 if first is None else 5
    return clock


def _by_name(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {span.name: span for span in exporter.get_finished_spans()}


def test_the_spans_follow_the_clock_under_the_carried_context(tracing: Tracing, exporter: InMemorySpanExporter) -> None:
    job_trace.record(tracing, _job(tracing), _clock(first=101.0), 102.5, {"llamaq.outcome": "completed"})
    spans = _by_name(exporter)
    admission, wait, job = spans["admission"], spans["queue.wait"], spans["job"]
    assert wait.parent is not None and job.parent is not None
    assert wait.parent.span_id == job.parent.span_id == admission.context.span_id
    for name in ("prompt", "decode"):
        parent = spans[name].parent
        assert parent is not None and parent.span_id == job.context.span_id
    seconds = {name: (span.start_time / 1e9, (span.end_time or 0) / 1e9) for name, span in spans.items()}
    assert seconds["queue.wait"] == (100.0, 100.5) and seconds["job"] == (100.5, 102.5)
    assert seconds["prompt"] == (100.5, 101.0) and seconds["decode"] == (101.0, 102.0)
    assert job.attributes is not None and job.attributes["gen_ai.usage.output_tokens"] == 5
    assert job.status.is_ok


def test_a_job_without_tokens_has_no_decode_and_a_failure_is_an_error(
    tracing: Tracing, exporter: InMemorySpanExporter
) -> None:
    job_trace.record(tracing, _job(tracing), _clock(first=None), 101.0, {"llamaq.outcome": "failed"})
    spans = _by_name(exporter)
    assert "decode" not in spans and (spans["prompt"].end_time or 0) / 1e9 == 101.0
    assert not spans["job"].status.is_ok


def test_off_records_nothing() -> None:
    job_trace.record(Tracing(), JobPayload(id="j", kind="chat", model="m", lane="l", created=0), _clock(1.0), 2.0, {})
