"""The job function RQ runs: generate, publish every token, end with exactly one terminal event."""

import logging
import time
from typing import Any

from shared import embedding_rules, jobmetrics, names, objects
from shared.errors import Cancelled, LlamaqError, Timeout
from shared.payload import JobPayload, response_id
from shared.states import Status
from worker.context import WorkerContext
from worker.embed_task import embed_job
from worker.engine import Progress
from worker.metrics import JobClock
from worker.runner import enqueued_at
from worker.sink import EventSink, Refused

logger = logging.getLogger(__name__)


def run(ctx: WorkerContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Entry point named by `shared.payload.JOB_FUNCTION`; returns a summary, never user text."""
    job = JobPayload.model_validate(payload)
    sink = EventSink(ctx.scripts, ctx.settings, job.id)
    if not sink.claim(ctx.name):
        return {"job": job.id, "outcome": "skipped"}
    ctx.current.begin(job.id)
    started = time.monotonic()
    clock = JobClock(enqueued_at())
    try:
        outcome = _serve(ctx, job, sink, clock)
    except Refused:
        outcome = "superseded"
    except BaseException as exc:
        logger.exception("job failed", extra={"job_id": job.id})
        if not sink.finished:
            _safe_error(sink, LlamaqError("The worker failed while generating.", code="internal_error"), job.id)
        if not isinstance(exc, Exception):
            raise
        outcome = "failed"
    finally:
        ctx.current.end(job.id)
    duration = time.monotonic() - started
    figures = clock.figures(job.model, job.lane)
    with ctx.redis.pipeline(transaction=False) as pipe:
        pipe.lpush(names.job_durations_key(job.model), round(duration, 4))
        pipe.ltrim(names.job_durations_key(job.model), 0, 99)
        jobmetrics.record(pipe, figures)
        pipe.execute()
    extra: dict[str, Any] = {"job_id": job.id, "model": job.model, "lane": job.lane, "worker": ctx.name}
    extra.update(outcome=outcome, seconds=round(duration, 4), attempt=sink.attempt)
    if job.request_id:
        extra["request_id"] = job.request_id
    extra.update(clock.log_fields(figures))
    logger.info("job finished", extra=extra)
    return {"job": job.id, "outcome": outcome, "seconds": duration}


def _serve(ctx: WorkerContext, job: JobPayload, sink: EventSink, clock: JobClock) -> str:
    try:  # the API refuses these first; a job queued before the model changed kind ends here
        embedding_rules.check_kind(job, ctx.engine.kind)
    except LlamaqError as exc:
        sink.error(exc)
        return "rejected"
    return (embed_job if job.kind == embedding_rules.EMBEDDING else _generate)(ctx, job, sink, clock)


def _generate(ctx: WorkerContext, job: JobPayload, sink: EventSink, clock: JobClock) -> str:
    try:
        prepared = ctx.engine.prepare(job)
    except LlamaqError as exc:
        sink.error(exc)
        return "rejected"
    choices = [Progress(prompt_tokens=len(prepared.tokens)) for _ in range(job.params.n)]
    clock.prompt_tokens = len(prepared.tokens)
    if sink.begin(ctx.name, clock.prompt_tokens):
        return "cancelled"
    deadline = time.monotonic() + ctx.settings.job_timeout
    for piece in ctx.engine.generate(prepared, job.params, *choices):
        generated = sum(choice.completion_tokens for choice in choices)
        clock.cached_tokens = choices[0].cached_tokens
        clock.token(generated)
        ctx.current.tokens(job.id, generated)
        if sink.token(piece, piece.choice, piece.logprobs):
            sink.error(Cancelled("The job was cancelled."), Status.CANCELLED, _response(job, choices))
            return "cancelled"
        if time.monotonic() > deadline:
            message = f"The job exceeded its generation time limit of {ctx.settings.job_timeout} s."
            sink.error(Timeout(message, code="job_timeout"), Status.FAILED, _response(job, choices))
            return "timeout"
    sink.done(_response(job, choices))
    return "completed"


def _response(job: JobPayload, choices: list[Progress]) -> dict[str, Any]:
    first = choices[0]
    generated = sum(choice.completion_tokens for choice in choices)
    usage = objects.usage(first.prompt_tokens, generated, first.cached_tokens)
    made = [
        objects.Choice("".join(choice.text), choice.finish_reason, choice.logprobs if job.params.logprobs else None)
        for choice in choices
    ]
    build = objects.chat_completion if job.kind == "chat" else objects.text_completion
    return build(response_id(job.id, job.kind), job.model, job.created, made, usage)


def _safe_error(sink: EventSink, exc: LlamaqError, job_id: str) -> None:
    try:
        sink.error(exc)
    except Exception:
        logger.exception("could not publish the terminal event", extra={"job_id": job_id})
