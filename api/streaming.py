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
        self._choices = payload.params.n
        self._id = response_id(payload.id, payload.kind)
        self._model = payload.model
        self._created = payload.created
        self._usage = include_usage

    def _chunk(
        self,
        content: str | None,
        finish: str | None = None,
        usage: Any = None,
        role: bool = False,
        index: int = 0,
        logprobs: list[dict[str, Any]] | None = None,
        calls: list[dict[str, Any]] | None = None,
    ) -> bytes:
        head = (self._id, self._model, self._created)
        if self._chat:
            delta: dict[str, Any] | None = (
                None
                if content is None
                else ({"role": "assistant", "content": content} if role else {"content": content})
            )
            if calls:
                delta = {"tool_calls": calls}
            if finish is not None:
                delta = {}
            chunk = objects.chat_chunk(*head, delta, finish, usage, self._usage, index, logprobs)
        else:
            chunk = objects.text_chunk(*head, content, finish, usage, self._usage, index, logprobs)
        return sse(chunk)

    def opening(self) -> bytes:
        """The role of every choice, as OpenAI's first chunks carry it."""
        return b"".join(self._chunk("", role=True, index=i) for i in range(self._choices)) if self._chat else b""

    def token(
        self,
        text: str,
        index: int = 0,
        logprobs: list[dict[str, Any]] | None = None,
        calls: list[dict[str, Any]] | None = None,
    ) -> bytes:
        return self._chunk(text, index=index, logprobs=logprobs, calls=calls)

    def closing(self, response: dict[str, Any]) -> bytes:
        out = b"".join(
            self._chunk("", finish=choice["finish_reason"], index=choice["index"]) for choice in response["choices"]
        )
        if self._usage:
            out += self._chunk(None, usage=response["usage"])
        return out + END_OF_STREAM

    @staticmethod
    def error(error: dict[str, Any]) -> bytes:
        return sse({"error": error})
