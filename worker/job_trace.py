"""A job's spans, made from its own clock once it ends (nothing traced per token): `queue.wait` from the API's
enqueue to the claim, and `job` with its `prompt` (prepare, prompt pass, first token) and `decode` children."""

from typing import Any

from shared.payload import JobPayload
from shared.tracing import Tracing, nanos
from worker.metrics import JobClock

# Outcomes of a job that did not do what it was asked: its span's status is an error.
_FAILED = {"failed", "timeout"}


def record(tracing: Tracing, job: JobPayload, clock: JobClock, ended: float, fields: dict[str, Any]) -> None:
    """Spans of a job that ended at `ended` (Unix time), children of the trace context the job carries."""
    if not tracing.on:
        return
    parent = tracing.extract({"traceparent": job.traceparent, "tracestate": job.tracestate})
    base = {"llamaq.job_id": job.id, "llamaq.model": job.model, "llamaq.lane": job.lane}
    if clock.enqueued is not None:
        tracing.start("queue.wait", parent, clock.enqueued, attributes=base).end(nanos(clock.claimed))
    tokens = {
        "gen_ai.request.model": job.model,
        "gen_ai.usage.input_tokens": clock.prompt_tokens,
        "gen_ai.usage.output_tokens": clock.completion_tokens,
        "llamaq.cached_tokens": clock.cached_tokens,
    }
    span = tracing.start("job", parent, clock.claimed, "consumer", {**base, **tokens, **fields})
    if fields.get("llamaq.outcome") in _FAILED:
        tracing.failed(span, str(fields["llamaq.outcome"]))
    inside = tracing.context_of(span)
    first = clock.first if clock.first is not None else ended
    prompt = {"gen_ai.usage.input_tokens": clock.prompt_tokens, "llamaq.cached_tokens": clock.cached_tokens}
    tracing.start("prompt", inside, clock.claimed, attributes=prompt).end(nanos(first))
    if clock.first is not None and clock.last is not None:
        decode = {"gen_ai.usage.output_tokens": clock.completion_tokens}
        tracing.start("decode", inside, clock.first, attributes=decode).end(nanos(clock.last))
    span.end(nanos(ended))
