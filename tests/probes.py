"""What unit and integration tests read back from the API: waits with a deadline, SSE bodies, errors, job ids."""

import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import httpx
import orjson

from tests.spec import assert_conforms

T = TypeVar("T")
DONE = "[DONE]"


def poll(check: Callable[[], T], timeout: float, interval: float = 0.05) -> T:
    """Call `check` until it answers something truthy or `timeout` seconds pass; its last answer."""
    deadline = time.monotonic() + timeout
    while not (answer := check()) and time.monotonic() < deadline:
        time.sleep(interval)
    return answer


def wait_for(check: Callable[[], T | None], what: str, timeout: float = 60.0, interval: float = 0.05) -> T:
    """The first truthy answer of `check`; fails naming `what` when none comes within `timeout` seconds."""
    answer = poll(check, timeout, interval)
    if not answer:
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")
    return answer


def job_of(response_id: str) -> str:
    """The job behind a completion id (`chatcmpl-<hex>` or `cmpl-<hex>` is job `job_<hex>`)."""
    return "job_" + response_id.split("-", 1)[1]


def error_of(reply: httpx.Response, status: int = 400, **expected: str | None) -> dict[str, Any]:
    """The OpenAI error object of `reply`, after checking its status, its shape and any `expected` fields."""
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert set(body) == {"error"}, body
    assert_conforms("ErrorResponse", body)
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert {name: body["error"][name] for name in expected} == expected
    return dict(body["error"])


def data_payloads(raw: str | bytes) -> list[str]:
    """Every `data:` payload of an SSE body, in order, after checking its framing."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    assert text.endswith("\n\n"), "every event ends with a blank line"
    payloads = []
    for event in text.split("\n\n")[:-1]:
        fields = [line for line in event.split("\n") if line.startswith("data: ")]
        assert len(fields) == 1, f"one data line per event: {event!r}"
        payloads.append(fields[0].removeprefix("data: "))
    return payloads


def data_lines(base_url: str, path: str, body: dict[str, Any], timeout: float = 60.0) -> list[str]:
    """The `data:` payloads of a streamed POST, read raw with httpx rather than through a client."""
    with httpx.stream("POST", f"{base_url}{path}", json=body, timeout=timeout) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = "".join(response.iter_text())
    return data_payloads(raw)


def chunks(payloads: list[str]) -> list[dict[str, Any]]:
    """The JSON chunks before the final `[DONE]`, which must come last and only once."""
    assert payloads and payloads[-1] == DONE, f"stream does not end with [DONE]: {payloads[-1:]}"
    assert payloads.count(DONE) == 1
    return [orjson.loads(payload) for payload in payloads[:-1]]


def job_events(lines: Iterable[str]) -> list[tuple[int, str, dict[str, Any]]]:
    """The SSE of `GET /v1/jobs/{id}/events` read back as (sequence number, event name, data)."""
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
