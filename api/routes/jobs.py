"""Background jobs: submit and come back with the id — status, result, cancel, event stream, list."""

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse

from api.cancel import cancel_job
from api.deps import AdmissionDep, OwnerDep, RedisDep, RelayDep, SettingsDep
from api.jobviews import job_object, load
from api.jsonresponse import OrjsonResponse
from api.listing import After, Limit, page
from api.middleware.request_log import annotate
from api.payloads import payload_for, within
from api.streaming import sse
from shared import events, names
from shared.errors import InvalidRequest
from shared.logs import REQUEST_ID
from shared.schemas import JobCreate

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

# A comment line keeps idle event streams open through proxies.
KEEPALIVE_SECONDS = 15.0


@router.post("", status_code=202)
async def create_job(
    body: JobCreate,
    request: Request,
    owner: OwnerDep,
    settings: SettingsDep,
    redis: RedisDep,
    admission: AdmissionDep,
    idempotency_key: Annotated[str | None, Header(max_length=256)] = None,
) -> OrjsonResponse:
    payload = payload_for(body.endpoint, body.body, settings, names.BATCH, "body")
    payload.request_id = REQUEST_ID.get()  # so the worker's job log line names this request
    annotate(request, job_id=payload.id, model=payload.model)
    extra = {"endpoint": body.endpoint, "metadata": orjson.dumps(body.metadata or {})}
    try:
        admitted = await admission.enqueue(payload, owner, extra, idempotency_key or "")
    except InvalidRequest as exc:
        raise within(exc, "body") from None
    if not admitted.replayed:
        index = names.owner_index_key(owner, "jobs")
        async with redis.pipeline(transaction=False) as pipe:
            pipe.zadd(index, {admitted.job_id: time.time()})
            pipe.zremrangebyscore(index, 0, time.time() - settings.result_ttl)
            pipe.expire(index, settings.result_ttl)
            await pipe.execute()
    return OrjsonResponse(await job_object(redis, admitted.job_id, owner), status_code=202)


@router.get("")
async def list_jobs(
    owner: OwnerDep,
    redis: RedisDep,
    limit: Limit = 20,
    after: After = None,
) -> dict[str, Any]:
    return await page(redis, names.owner_index_key(owner, "jobs"), limit, after, lambda i: job_object(redis, i, owner))


@router.get("/{job_id}")
async def retrieve_job(job_id: str, owner: OwnerDep, redis: RedisDep) -> dict[str, Any]:
    return await job_object(redis, job_id, owner)


@router.post("/{job_id}/cancel")
async def cancel(job_id: str, owner: OwnerDep, redis: RedisDep, settings: SettingsDep) -> dict[str, Any]:
    record = await load(redis, job_id, owner)
    await cancel_job(redis, settings, job_id, record["model"], record["lane"])
    return await job_object(redis, job_id, owner)


@router.get("/{job_id}/events")
async def job_events(
    job_id: str,
    request: Request,
    owner: OwnerDep,
    redis: RedisDep,
    relay: RelayDep,
    settings: SettingsDep,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """The job's events as SSE (`id:` is the sequence number): resume with Last-Event-ID, no gap, no repeat."""
    await load(redis, job_id, owner)
    after = int(last_event_id) if last_event_id and last_event_id.isdigit() else 0
    return StreamingResponse(
        _events(relay, job_id, after, settings.events_timeout),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


_NAMES = {
    events.Kind.TOKEN: "token",
    events.Kind.STARTED: "started",
    events.Kind.RETRY: "retry",
    events.Kind.DONE: "done",
}


async def _events(relay: Any, job_id: str, after: int, open_for: float) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + open_for
    async with relay.follow(job_id, after) as follower:
        while loop.time() < deadline:
            got = await follower.next(min(deadline, loop.time() + KEEPALIVE_SECONDS))
            if got is None:
                yield b": keep-alive\n\n"
                continue
            seq, event = got
            yield sse(event.wire(), seq, _NAMES.get(event.kind, "error"))
            if event.kind.ends_job:
                return
        yield sse({}, name="timeout")
