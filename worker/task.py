"""The job function RQ runs: generate, publish every token, end with exactly one terminal event."""

import logging
import time
from typing import Any

from shared import jobmetrics, names, objects
from shared.errors import Cancelled, LlamaqError, Timeout
from shared.payload import JobPayload, response_id
from shared.states import Status
from worker.context import WorkerContext
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
        outcome = _generate(ctx, job, sink, clock)
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


def _generate(ctx: WorkerContext, job: JobPayload, sink: EventSink, clock: JobClock) -> str:
    try:
        prepared = ctx.engine.prepare(job)
    except LlamaqError as exc:
        sink.error(exc)
        return "rejected"
    progress = Progress(prompt_tokens=len(prepared.tokens))
    clock.prompt_tokens = progress.prompt_tokens
    if sink.started(ctx.name, progress.prompt_tokens):
        sink.error(Cancelled("The job was cancelled."), Status.CANCELLED)
        return "cancelled"
    deadline = time.monotonic() + ctx.settings.job_timeout
    for piece in ctx.engine.generate(prepared, job.params, progress):
        clock.cached_tokens = progress.cached_tokens
        clock.token(progress.completion_tokens)
        ctx.current.tokens(job.id, progress.completion_tokens)
        if sink.token(piece):
            sink.error(Cancelled("The job was cancelled."), Status.CANCELLED, _response(job, progress))
            return "cancelled"
        if time.monotonic() > deadline:
            message = f"The job exceeded its generation time limit of {ctx.settings.job_timeout} s."
            sink.error(Timeout(message, code="job_timeout"), Status.FAILED, _response(job, progress))
            return "timeout"
    sink.done(_response(job, progress))
    return "completed"


def _response(job: JobPayload, progress: Progress) -> dict[str, Any]:
    build = objects.chat_completion if job.kind == "chat" else objects.text_completion
    usage = objects.usage(progress.prompt_tokens, progress.completion_tokens, progress.cached_tokens)
    text = "".join(progress.text)
    return build(response_id(job.id, job.kind), job.model, job.created, text, progress.finish_reason, usage)


def _safe_error(sink: EventSink, exc: LlamaqError, job_id: str) -> None:
    try:
        sink.error(exc)
    except Exception:
        logger.exception("could not publish the terminal event", extra={"job_id": job_id})
