"""Raw Server-Sent Events as they leave the API, read with httpx rather than through the client."""

from typing import Any

import httpx
import orjson

DONE = "[DONE]"


def data_lines(base_url: str, path: str, body: dict[str, Any], timeout: float = 60.0) -> list[str]:
    """Every `data:` payload of a streamed POST, in order, after checking the stream's framing."""
    with httpx.stream("POST", f"{base_url}{path}", json=body, timeout=timeout) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = "".join(response.iter_text())
    assert raw.endswith("\n\n"), "every event ends with a blank line"
    payloads = []
    for event in raw.split("\n\n")[:-1]:
        fields = [line for line in event.split("\n") if line.startswith("data: ")]
        assert len(fields) == 1, f"one data line per event: {event!r}"
        payloads.append(fields[0].removeprefix("data: "))
    return payloads


def chunks(payloads: list[str]) -> list[dict[str, Any]]:
    """The JSON chunks before the final `[DONE]`, which must come last and only once."""
    assert payloads and payloads[-1] == DONE, f"stream does not end with [DONE]: {payloads[-1:]}"
    assert payloads.count(DONE) == 1
    return [orjson.loads(payload) for payload in payloads[:-1]]
