"""Synchronous and streaming generation: enqueue, follow the job's events, answer or relay them."""

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

import anyio
from fastapi import Request
from fastapi.responses import StreamingResponse
from redis.exceptions import RedisError

from api.admission import Admission
from api.cancel import cancel_job
from api.jsonresponse import OrjsonResponse
from api.middleware.request_log import annotate
from api.relay import Event, Follower, Relay
from api.streaming import ChunkWriter
from shared import events
from shared.errors import ClientGone, JobFailed, Timeout, Unavailable
from shared.logs import REQUEST_ID
from shared.payload import JobPayload
from shared.schemas import SamplingFields
from shared.settings import Settings
from shared.tracing import Span

logger = logging.getLogger(__name__)

# How often a waiting request checks whether its client has gone.
DISCONNECT_POLL = 0.5


class Writer(Protocol):
    """What a streamed answer is written with: OpenAI's chat chunks, or the Responses API's events."""

    def opening(self) -> bytes: ...
    def token(
        self, text: str, index: int = 0, logprobs: Any = None, calls: list[dict[str, Any]] | None = None
    ) -> bytes: ...
    def closing(self, response: dict[str, Any]) -> bytes: ...
    def error(self, error: dict[str, Any]) -> bytes: ...


class Responder:
    def __init__(self, request: Request, relay: Relay, admission: Admission, settings: Settings) -> None:
        self.request = request
        self.relay = relay
        self.admission = admission
        self.settings = settings

    async def answer(self, payload: JobPayload, body: SamplingFields, owner: str, idempotency: str | None) -> Any:
        """Serve the request `body` became `payload`: streamed or not, with usage in the stream if asked."""
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        writer = functools.partial(ChunkWriter, include_usage=include_usage)
        return await self.serve(payload, owner, bool(body.stream), writer, _completion, idempotency or "")

    async def answer_once(self, payload: JobPayload, owner: str, idempotency: str | None) -> Any:
        """Serve a request whose answer is one object (embeddings): admit, wait for the job's result."""
        return await self.serve(payload, owner, False, _no_stream, _completion, idempotency or "")

    async def serve(
        self,
        payload: JobPayload,
        owner: str,
        stream: bool,
        writer: Callable[[JobPayload], Writer],
        render: Callable[[events.Done], dict[str, Any]],
        idempotency: str = "",
    ) -> Any:
        """Enqueue and answer: `render` makes the body of a finished job, `writer(payload)` the events of a
        streamed one (the payload of the job followed: a retried request's is the first attempt's)."""
        payload.request_id = REQUEST_ID.get()  # so the worker's job log line names this request
        annotate(self.request, job_id=payload.id, model=payload.model, stream=stream)
        stack = contextlib.AsyncExitStack()
        await stack.__aenter__()
        enqueued = False
        try:
            self.relay.ensure_connected()  # before admission: a job nobody can follow is never enqueued
            admitted = await self.admission.enqueue(payload, owner, idempotency=idempotency)
            enqueued = True
            if admitted.replayed:
                # A retried submit: follow the job the first attempt created, from its first event.
                payload = payload.model_copy(update={"id": admitted.job_id})
            # Subscribed only once admitted, so a refused request never touches the shared pub/sub connection
            # (under overload most are refused). Nothing is missed: a follower replays the job's stream first.
            follower = await stack.enter_async_context(self.relay.follow(payload.id))
            # The wait for the job's answer, or its whole stream: ended with the stack, whichever way it closes.
            span = self.admission.tracing.start(
                "relay", attributes={"llamaq.job_id": payload.id, "llamaq.stream": stream}
            )
            stack.callback(span.end)
            loop = asyncio.get_running_loop()
            first = await self._wait(follower, loop.time() + self.settings.sync_timeout, skip_started=not stream)
            if not stream:
                _, done = first
                await stack.aclose()
                assert isinstance(done, events.Done)  # `_wait` returns only a Done when STARTED is skipped
                return OrjsonResponse(render(done))
            body = self._relay_stream(follower, writer(payload), stack.pop_all(), span)
            return StreamingResponse(body, media_type="text/event-stream", headers=_SSE_HEADERS)
        except (JobFailed, Timeout):
            with anyio.CancelScope(shield=True):
                await stack.aclose()
            raise
        except BaseException:
            with anyio.CancelScope(shield=True):
                if enqueued:
                    await cancel_job(self.relay.redis, self.settings, payload.id, payload.model, payload.lane)
                await stack.aclose()
            raise

    async def _wait(self, follower: Follower, deadline: float, skip_started: bool) -> Event:
        """Next event that matters; raises the job's error, or Timeout (with the job id) at the deadline."""
        loop = asyncio.get_running_loop()
        next_check = loop.time() + DISCONNECT_POLL
        while True:
            got = await follower.next(min(deadline, next_check))
            if loop.time() >= next_check:
                # Checked on a clock, not only when nothing arrives: a running job's tokens never stop coming.
                if await self.request.is_disconnected():
                    raise ClientGone("The client disconnected.")
                next_check = loop.time() + DISCONNECT_POLL
            if got is None:
                if loop.time() >= deadline:
                    raise Timeout(
                        f"No result within {self.settings.sync_timeout:g} s; the job continues as "
                        f"{follower.job_id}: poll GET /v1/jobs/{follower.job_id}.",
                        code="timeout",
                        job_id=follower.job_id,
                    )
                continue
            event = got[1]
            if isinstance(event, events.Failed):
                raise _job_error(event)
            if isinstance(event, events.Done) or (isinstance(event, events.Started) and not skip_started):
                return got

    async def _relay_stream(
        self, follower: Follower, writer: Writer, stack: contextlib.AsyncExitStack, span: Span
    ) -> AsyncIterator[bytes]:
        finished = False
        tokens = 0
        try:
            yield writer.opening()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.settings.job_timeout + self.settings.heartbeat_ttl * 3
            while True:
                try:
                    got = await follower.next(deadline)
                except (RedisError, OSError):
                    # Tokens already went out, so the status line cannot change: end with an error event.
                    yield writer.error(
                        Unavailable("The queue (Redis) became unavailable mid-response.").to_dict()["error"]
                    )
                    return
                if got is None:
                    error = Timeout("The response did not finish within the job's time limit.", code="timeout")
                    yield writer.error(error.to_dict()["error"])
                    return
                _, event = got
                if isinstance(event, events.Token):
                    tokens += 1
                    yield writer.token(event.text, event.index, event.logprobs, event.calls)
                elif isinstance(event, events.Done):
                    finished = True
                    yield writer.closing(event.response)
                    return
                elif isinstance(event, events.Failed):
                    finished = True
                    yield writer.error(event.error)
                    return
        finally:
            span.set_attribute("llamaq.token_events", tokens)
            span.set_attribute("llamaq.finished", finished)
            with anyio.CancelScope(shield=True):
                if not finished:
                    with contextlib.suppress(RedisError, OSError):
                        await cancel_job(self.relay.redis, self.settings, follower.job_id, None, None)
                await stack.aclose()


def _completion(done: events.Done) -> dict[str, Any]:
    return done.response


def _no_stream(payload: JobPayload) -> Writer:
    raise AssertionError("an answer in one object is never streamed")


def _job_error(event: events.Failed) -> JobFailed:
    error = event.error
    return JobFailed(
        error["message"],
        status=event.status,
        type=error["type"],
        code=error["code"],
        param=error["param"],
    )


_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
