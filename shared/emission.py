"""Keys and arguments of the EMIT script, built in one place for the worker, relay, canceller and reaper."""

import time
from typing import Any

import orjson

from shared import events, names
from shared.settings import Settings


def emission(
    settings: Settings,
    job_id: str,
    event: bytes,
    kind: str,
    *,
    attempt: int | str = "",
    terminal: str = "",
    expect: str = "",
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
    if terminal:
        decoded = orjson.loads(event)
        if kind == events.DONE:
            body = orjson.dumps(decoded["response"])
        else:
            body, status = orjson.dumps(decoded["error"]), int(decoded.get("status") or 500)
    args: list[Any] = [
        event,
        kind,
        attempt,
        terminal,
        settings.stream_maxlen,
        settings.result_ttl,
        time.time(),
    ]
    args += [expect, body, job_id, status, names.batch_key("")]
    return keys, args
