"""The SSE of `GET /v1/jobs/{id}/events` read back as (sequence number, event name, data)."""

from collections.abc import Iterable
from typing import Any

import orjson


def job_events(lines: Iterable[str]) -> list[tuple[int, str, dict[str, Any]]]:
    found: list[tuple[int, str, dict[str, Any]]] = []
    seq, name = 0, ""
    for text in lines:
        if text.startswith("id: "):
            seq = int(text[4:])
        elif text.startswith("event: "):
            name = text[7:]
        elif text.startswith("data: "):
            found.append((seq, name, orjson.loads(text[6:])))
    return found
