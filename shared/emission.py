"""Keys and arguments of the EMIT script, built in one place for the worker, relay, canceller and reaper."""

import time
from typing import Any

import orjson

from shared import events, names
from shared.settings import Settings
from shared.states import Status


def emission(
    settings: Settings,
    job_id: str,
    event: events.Event,
    *,
    attempt: int | str = "",
    terminal: Status | None = None,
    expect: Status | None = None,
) -> tuple[list[str], list[Any]]:
    """(keys, args) for `shared.scripts.EMIT`; a terminal event also carries its batch-line body."""
    keys = [
        names.job_key(job_id),
        names.events_key(job_id),
        names.live_channel(job_id),
        names.cancel_key(job_id),
        names.metrics_key(),
    ]
    body, status = b"", 200
    if terminal is not None:
        if isinstance(event, events.Done):
            body = orjson.dumps(event.response)
        elif isinstance(event, events.Failed):
            body, status = orjson.dumps(event.error), event.status or 500
    args: list[Any] = [
        events.encode(event),
        event.kind,
        attempt,
        terminal or "",
        settings.stream_maxlen,
        settings.result_ttl,
        time.time(),
    ]
    args += [expect or "", body, job_id, status, names.batch_key("")]
    return keys, args
