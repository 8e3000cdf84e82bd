"""Job events as they travel through Redis: a token, a start, a retry, or one terminal event.

On the wire an event is `<seq>|<json>`: the sequence number is assigned inside Redis, so readers
detect gaps and duplicates between the live channel and the replay stream.
"""

from typing import Any

import orjson

TOKEN = "t"
STARTED = "s"
RETRY = "r"
DONE = "d"
ERROR = "e"
TERMINAL_KINDS = frozenset({DONE, ERROR})


def token(text: str) -> bytes:
    return orjson.dumps({"k": TOKEN, "x": text})


def started(worker: str, prompt_tokens: int, attempt: int) -> bytes:
    return orjson.dumps({"k": STARTED, "worker": worker, "prompt_tokens": prompt_tokens, "attempt": attempt})


def retry(attempt: int, reason: str) -> bytes:
    return orjson.dumps({"k": RETRY, "attempt": attempt, "reason": reason})


def done(response: dict[str, Any]) -> bytes:
    return orjson.dumps({"k": DONE, "response": response})


def error(
    status: int,
    type_: str,
    code: str | None,
    message: str,
    param: str | None = None,
    partial: dict[str, Any] | None = None,
) -> bytes:
    """The terminal error; `partial` keeps the response generated before it (timeouts, cancels)."""
    body = {"message": message, "type": type_, "param": param, "code": code}
    return orjson.dumps({"k": ERROR, "status": status, "error": body, "partial": partial})


def decode(raw: bytes) -> tuple[int, dict[str, Any]]:
    """Split `<seq>|<json>` into its sequence number and event."""
    head, _, body = raw.partition(b"|")
    return int(head), orjson.loads(body)
