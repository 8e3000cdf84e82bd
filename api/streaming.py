"""Server-Sent Events framing of OpenAI stream chunks."""

from typing import Any

import orjson

from shared import objects
from shared.payload import JobPayload, response_id

# The line that ends an OpenAI stream (not a job event: see shared/events.py).
END_OF_STREAM = b"data: [DONE]\n\n"


def sse(data: dict[str, Any], event_id: int | None = None, name: str | None = None) -> bytes:
    """One Server-Sent Event: `event:` and `id:` lines when given, then the JSON data."""
    head = f"event: {name}\n".encode() if name else b""
    if event_id is not None:
        head += f"id: {event_id}\n".encode()
    return head + b"data: " + orjson.dumps(data) + b"\n\n"


class ChunkWriter:
    """Builds the chunks of one streamed response, chat or legacy completion."""

    def __init__(self, payload: JobPayload, include_usage: bool) -> None:
        self._chat = payload.kind == "chat"
        self._id = response_id(payload.id, payload.kind)
        self._model = payload.model
        self._created = payload.created
        self._usage = include_usage

    def _chunk(self, content: str | None, finish: str | None = None, usage: Any = None, role: bool = False) -> bytes:
        if self._chat:
            delta = (
                None
                if content is None
                else ({"role": "assistant", "content": content} if role else {"content": content})
            )
            if finish is not None:
                delta = {}
            chunk = objects.chat_chunk(self._id, self._model, self._created, delta, finish, usage, self._usage)
        else:
            chunk = objects.text_chunk(self._id, self._model, self._created, content, finish, usage, self._usage)
        return sse(chunk)

    def opening(self) -> bytes:
        return self._chunk("", role=True) if self._chat else b""

    def token(self, text: str) -> bytes:
        return self._chunk(text)

    def closing(self, response: dict[str, Any]) -> bytes:
        finish = response["choices"][0]["finish_reason"]
        out = self._chunk("", finish=finish)
        if self._usage:
            out += self._chunk(None, usage=response["usage"])
        return out + END_OF_STREAM

    @staticmethod
    def error(error: dict[str, Any]) -> bytes:
        return sse({"error": error})
