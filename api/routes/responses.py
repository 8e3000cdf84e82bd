"""The Responses API: create (answered, streamed, or in the background), retrieve (polled, or its event stream
resumed after `starting_after`), cancel, delete, and list a response's input items."""

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from api import responses_store as store
from api.cancel import cancel_job
from api.deps import AdmissionDep, OwnerDep, RedisDep, RelayDep, SettingsDep
from api.responder import Responder
from api.responses_input import input_items, job_for, messages
from api.responses_stream import Render, ResponseEvents, ResponseWriter, frame
from api.responses_view import ENDED, echo, response_object
from api.routes.jobs import KEEPALIVE_SECONDS
from shared import events, names
from shared.errors import InvalidRequest, NotFound
from shared.logs import REQUEST_ID
from shared.responses import ResponseCreate

router = APIRouter(prefix="/v1/responses", tags=["responses"])


def _sse(body: AsyncIterator[bytes]) -> StreamingResponse:
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(body, media_type="text/event-stream", headers=headers)


def renderer(stored: store.Stored, finished_at: list[float] | None = None) -> Render:
    """The object at a point of its stream; its completion time is the job's when known (`finished_at`)."""

    def render(status: str | None, terminal: events.Event | None) -> dict[str, Any]:
        finished = (finished_at[0] if finished_at else time.time()) if terminal is not None else None
        return response_object(stored, status, terminal, finished)

    return render


@router.post("")
async def create_response(
    body: ResponseCreate,
    request: Request,
    owner: OwnerDep,
    settings: SettingsDep,
    redis: RedisDep,
    relay: RelayDep,
    admission: AdmissionDep,
) -> Any:
    previous = body.previous_response_id
    context = await store.conversation(redis, previous, owner) if previous else []
    payload = job_for(body, context, settings, names.BATCH if body.background else names.INTERACTIVE)
    payload.request_id = REQUEST_ID.get()
    stored = store.Stored(
        id=store.response_id(payload.id), owner=owner, model=body.model, created_at=payload.created,
        background=bool(body.background), store=body.store is not False, echo=echo(body),
        input=input_items(body.items(), payload.id.removeprefix("job_")), context=context,
        messages=messages(body.items()),
    )  # fmt: skip
    render = renderer(stored)
    if stored.store:
        await store.save(redis, stored, settings)
    try:
        if body.background:
            relay.ensure_connected()
            await admission.enqueue(payload, owner, {"endpoint": "/v1/responses"})
            if body.stream:
                return _sse(_replay(relay, stored, -1, settings.events_timeout))
            return render("queued", None)
        stream_events = ResponseEvents(payload.id.removeprefix("job_"), False, render)
        answer = Responder(request, relay, admission, settings)
        return await answer.serve(
            payload, owner, bool(body.stream), lambda _: ResponseWriter(stream_events), lambda done: render(None, done)
        )
    except BaseException:
        if (await store.job_state(redis, stored.job_id)).status is None:
            await store.delete(redis, stored)  # refused: no job was ever made, so no response either
        raise


@router.get("/{response_id}")
async def retrieve_response(
    response_id: str,
    owner: OwnerDep,
    redis: RedisDep,
    relay: RelayDep,
    settings: SettingsDep,
    stream: bool = False,
    starting_after: Annotated[int, Query(ge=-1)] = -1,
) -> Any:
    stored = await store.load(redis, response_id, owner)
    state = await _state(redis, stored)
    if stream:
        return _sse(_replay(relay, stored, starting_after, settings.events_timeout))
    return response_object(stored, state.status, state.terminal, state.finished_at)


@router.post("/{response_id}/cancel")
async def cancel_response(response_id: str, owner: OwnerDep, redis: RedisDep, settings: SettingsDep) -> Any:
    stored = await store.load(redis, response_id, owner)
    if not stored.background:
        raise InvalidRequest("Only background responses can be cancelled.", param="response_id")
    state = await _state(redis, stored)
    if response_object(stored, state.status, state.terminal, None)["status"] not in ENDED:
        await cancel_job(redis, settings, stored.job_id, state.model, state.lane)
        state = await _state(redis, stored)
    return response_object(stored, state.status, state.terminal, state.finished_at)


@router.delete("/{response_id}")
async def delete_response(response_id: str, owner: OwnerDep, redis: RedisDep, settings: SettingsDep) -> Any:
    stored = await store.load(redis, response_id, owner)
    state = await store.job_state(redis, stored.job_id)
    if state.status is not None and state.terminal is None:
        await cancel_job(redis, settings, stored.job_id, state.model, state.lane)
    await store.delete(redis, stored)
    return {"id": stored.id, "object": "response.deleted", "deleted": True}


@router.get("/{response_id}/input_items")
async def list_input_items(
    response_id: str,
    owner: OwnerDep,
    redis: RedisDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Literal["asc", "desc"] = "desc",
    after: str | None = None,
) -> dict[str, Any]:
    items = (await store.load(redis, response_id, owner)).input
    items = items if order == "asc" else items[::-1]
    if after is not None:
        ids = [item["id"] for item in items]
        if after not in ids:
            raise InvalidRequest(f"No input item with id '{after}' in this response.", param="after")
        items = items[ids.index(after) + 1 :]
    page = items[:limit]
    first, last = (page[0]["id"], page[-1]["id"]) if page else (None, None)
    return {"object": "list", "data": page, "first_id": first, "last_id": last, "has_more": len(items) > limit}


async def _state(redis: Any, stored: store.Stored) -> store.JobState:
    state = await store.job_state(redis, stored.job_id)
    if state.status is None:
        raise NotFound(f"No response found with id '{stored.id}' (it may have expired).", param="response_id")
    return state


async def _replay(relay: Any, stored: store.Stored, after: int, open_for: float) -> AsyncIterator[bytes]:
    """The response's events from the first, those numbered above `after` sent; until it ends or `open_for`."""
    finished_at: list[float] = []
    stream = ResponseEvents(stored.id.removeprefix("resp_"), stored.background, renderer(stored, finished_at))
    for event in stream.opening():
        if event["sequence_number"] > after:
            yield frame(event)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + open_for
    async with relay.follow(stored.job_id) as follower:
        while loop.time() < deadline:
            got = await follower.next(min(deadline, loop.time() + KEEPALIVE_SECONDS))
            if got is None:
                yield b": keep-alive\n\n"
                continue
            _, event = got
            if event.kind.ends_job:
                finished_at.append((await store.job_state(relay.redis, stored.job_id)).finished_at or time.time())
            for made in stream.feed(event):
                if made["sequence_number"] > after:
                    yield frame(made)
            if event.kind.ends_job:
                return
