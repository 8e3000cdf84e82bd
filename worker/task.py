"""The job function RQ runs: generate, publish every token, end with exactly one terminal event."""

import logging
import time
from typing import Any

from shared import embedding_rules, jobmetrics, names, objects
from shared.errors import Cancelled, LlamaqError, Timeout
from shared.payload import JobPayload, response_id
from shared.states import Status
from worker import job_trace
from worker.context import WorkerContext
from worker.embed_task import embed_job
from worker.engine import Progress
from worker.metrics import JobClock
from worker.runner import enqueued_at
from worker.scheduler import Piece
from worker.sink import EventSink, Refused
from worker.toolcalls import Parsed, ToolCallParser

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
    fields = {"llamaq.outcome": outcome, "llamaq.attempt": sink.attempt, "llamaq.worker": ctx.name}
    job_trace.record(ctx.tracing, job, clock, time.time(), fields)
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
    calls = [ToolCallParser(prepared.functions) for _ in choices] if prepared.functions else None
    clock.prompt_tokens = len(prepared.tokens)
    if sink.begin(ctx.name, clock.prompt_tokens):
        return "cancelled"
    deadline = time.monotonic() + ctx.settings.job_timeout
    # What this thread has published of each choice: a partial response is that, not what the engine did since.
    sent = [Progress(prompt_tokens=len(prepared.tokens)) for _ in choices]
    for piece in ctx.engine.generate(prepared, job.params, *choices):
        generated = sum(choice.completion_tokens for choice in choices)
        clock.cached_tokens = choices[0].cached_tokens
        clock.token(generated)
        ctx.current.tokens(job.id, generated)
        _published(sent[piece.choice], choices[piece.choice], piece)
        parsed = calls[piece.choice].feed(piece) if calls else None
        if _send(sink, piece, piece.choice, parsed, piece.logprobs):
            sink.error(Cancelled("The job was cancelled."), Status.CANCELLED, _response(job, sent, calls))
            return "cancelled"
        if time.monotonic() > deadline:
            message = f"The job exceeded its generation time limit of {ctx.settings.job_timeout} s."
            sink.error(Timeout(message, code="job_timeout"), Status.FAILED, _response(job, sent, calls))
            return "timeout"
    for index, parser in enumerate(calls or []):
        if _send(sink, "", index, parser.finish()):
            sink.error(Cancelled("The job was cancelled."), Status.CANCELLED, _response(job, choices, calls))
            return "cancelled"
    sink.done(_response(job, choices, calls))
    return "completed"


def _published(sent: Progress, progress: Progress, piece: Piece) -> None:
    sent.completion_tokens, sent.cached_tokens = piece.tokens, progress.cached_tokens
    sent.text.append(piece)
    sent.logprobs.extend(piece.logprobs or [])


def _send(
    sink: EventSink, text: str, index: int, parsed: Parsed | None, logprobs: list[dict[str, Any]] | None = None
) -> bool:
    """Publish a piece of one choice: as it is, or as the content and call deltas the tool-call parser read."""
    if parsed is None:
        return sink.token(text, index, logprobs)
    cancelled = False
    if parsed.content or (logprobs and not parsed.calls):
        cancelled = sink.token(parsed.content, index, logprobs)
    if parsed.calls:
        cancelled = sink.token("", index, None if parsed.content else logprobs, parsed.calls) or cancelled
    return cancelled


def _response(job: JobPayload, choices: list[Progress], calls: list[ToolCallParser] | None) -> dict[str, Any]:
    first = choices[0]
    generated = sum(choice.completion_tokens for choice in choices)
    usage = objects.usage(first.prompt_tokens, generated, first.cached_tokens)
    made = [
        _choice(choice, calls[index] if calls else None, job.params.logprobs) for index, choice in enumerate(choices)
    ]
    build = objects.chat_completion if job.kind == "chat" else objects.text_completion
    return build(response_id(job.id, job.kind), job.model, job.created, made, usage)


def _choice(progress: Progress, parser: ToolCallParser | None, logprobs: bool) -> objects.Choice:
    entries = progress.logprobs if logprobs else None
    if parser is None or not parser.calls:
        text = "".join(progress.text)
        return objects.Choice(text, progress.finish_reason, entries)
    made = [
        {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
        for call in parser.calls
    ]
    # Calls end an answer the model ended itself; one cut at its token budget says so.
    finish = "tool_calls" if progress.finish_reason == "stop" else progress.finish_reason
    return objects.Choice(parser.message_content(), finish, entries, made)


def _safe_error(sink: EventSink, exc: LlamaqError, job_id: str) -> None:
    try:
        sink.error(exc)
    except Exception:
        logger.exception("could not publish the terminal event", extra={"job_id": job_id})
