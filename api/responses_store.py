"""Stored responses in Redis: one hash each beside its job, kept as long as job results (`LLAMAQ_RESULT_TTL`)
and visible only to the API key that made it. The conversation a later `previous_response_id` continues is
rebuilt from the chain: its earlier turns, its input and its reply."""

from dataclasses import asdict, dataclass
from typing import Any

import orjson
from redis.asyncio import Redis

from api.responses_input import reply_messages
from shared import events, names
from shared.errors import InvalidRequest, NotFound
from shared.settings import Settings

_JOB_FIELDS = ["status", "terminal", "finished_at", "model", "lane"]


def response_id(job_id: str) -> str:
    return "resp_" + job_id.removeprefix("job_")


def job_id_of(response: str) -> str:
    return "job_" + response.removeprefix("resp_")


@dataclass
class Stored:
    id: str
    owner: str
    model: str
    created_at: int
    background: bool
    store: bool
    echo: dict[str, Any]  # what the object repeats of the request
    input: list[dict[str, Any]]  # the input items, with their ids
    context: list[dict[str, Any]]  # the conversation before this response, as chat messages
    messages: list[dict[str, Any]]  # this response's input as chat messages

    @property
    def job_id(self) -> str:
        return job_id_of(self.id)


@dataclass
class JobState:
    status: str | None
    terminal: events.Event | None
    finished_at: float | None
    model: str | None
    lane: str | None


async def save(redis: Redis, stored: Stored, settings: Settings) -> None:
    # Kept a job's time limit longer than results, so it never outlives the job it reads its output from.
    ttl = settings.result_ttl + settings.job_timeout
    await redis.set(names.response_key(stored.id), orjson.dumps(asdict(stored)), ex=ttl)


async def load(redis: Redis, response: str, owner: str) -> Stored:
    raw = await redis.get(names.response_key(response))
    stored = Stored(**orjson.loads(raw)) if raw else None
    if stored is None or stored.owner != owner:
        raise NotFound(f"No response found with id '{response}' (it may have expired).", param="response_id")
    return stored


async def delete(redis: Redis, stored: Stored) -> None:
    await redis.delete(names.response_key(stored.id))


async def job_state(redis: Redis, job_id: str) -> JobState:
    values = await redis.hmget(names.job_key(job_id), _JOB_FIELDS)
    status, terminal, finished, model, lane = (v.decode() if v is not None else None for v in values)
    event = events.parse(orjson.loads(terminal)) if terminal else None
    return JobState(status, event, float(finished) if finished else None, model, lane)


async def conversation(redis: Redis, previous: str, owner: str) -> list[dict[str, Any]]:
    """The chat messages a response continuing `previous` starts from (its instructions are not carried over)."""
    try:
        stored = await load(redis, previous, owner)
    except NotFound:
        raise InvalidRequest(
            f"Previous response with id '{previous}' not found.", param="previous_response_id", code="not_found"
        ) from None
    state = await job_state(redis, stored.job_id)
    if not isinstance(state.terminal, events.Done):
        raise InvalidRequest(
            f"Previous response '{previous}' has not completed; continue from a completed response.",
            param="previous_response_id",
        )
    return stored.context + stored.messages + reply_messages(state.terminal.response)
