"""A response's stream events, made from its job's events: `response.created`, `response.in_progress`, the
output items with their text and function-call argument deltas, then `response.completed` (or `incomplete`,
`failed`). Each event has a `sequence_number`, counted from 0; the same job events always make the same
stream, so a stream resumed with `starting_after` (on any API replica, after any restart) has no gap and no
repeat. A retried job's second attempt continues the stream it had begun."""

from collections.abc import Callable
from typing import Any

from api import responses_view as view
from api.streaming import sse
from shared import events

# The Response object at a job status ("queued", "in_progress") or at the job's terminal event.
Render = Callable[[str | None, events.Event | None], dict[str, Any]]


class ResponseEvents:
    def __init__(self, suffix: str, background: bool, render: Render) -> None:
        self._suffix = suffix
        self._background = background
        self._render = render  # the Response object, at a status and terminal event
        self._seq = 0
        self._started = False
        self._message: str | None = None  # text of the open message item
        self._had_message = False
        self._call: dict[str, Any] | None = None  # the open function-call item
        self._calls = 0
        self._next_index = 0
        self._message_index = 0

    def opening(self) -> list[dict[str, Any]]:
        first = self._event(
            "response.created", response=self._render("queued" if self._background else "in_progress", None)
        )
        if self._background:
            return [first, self._event("response.queued", response=self._render("queued", None))]
        return [first]

    def feed(self, event: events.Event) -> list[dict[str, Any]]:
        if isinstance(event, events.Started):
            return self.started()
        if isinstance(event, events.Token):
            return self.token(event)
        if isinstance(event, events.Done):
            return self.closing(event)
        if isinstance(event, events.Failed):
            return self.failed(event)
        return []  # a retry: the next attempt's events continue this stream

    def started(self) -> list[dict[str, Any]]:
        if self._started:
            return []
        self._started = True
        return [self._event("response.in_progress", response=self._render("in_progress", None))]

    def token(self, token: events.Token) -> list[dict[str, Any]]:
        out = []
        if token.text and self._calls == 0:
            if self._message is None:
                out += self._open_message()
            self._message = (self._message or "") + token.text
            out.append(self._event("response.output_text.delta", **self._text_at(), delta=token.text, logprobs=[]))
        for delta in token.calls or []:
            if "id" in delta:
                out += self._close_open("completed") + self._open_call(delta)
            elif self._call is not None:
                piece = delta["function"]["arguments"]
                self._call["arguments"] += piece
                where = {"item_id": self._call["id"], "output_index": self._call["index"]}
                out.append(self._event("response.function_call_arguments.delta", **where, delta=piece))
        return out

    def closing(self, done: events.Done) -> list[dict[str, Any]]:
        response = self._render(None, done)
        status = response["status"]
        item_status = "incomplete" if status == "incomplete" else "completed"
        kind = "response.incomplete" if status == "incomplete" else "response.completed"
        return [*self._close_open(item_status), self._event(kind, response=response)]

    def failed(self, failed: events.Failed) -> list[dict[str, Any]]:
        response = self._render(None, failed)
        if response["status"] == "cancelled":
            error = failed.error
            return [self._event("error", code=error.get("code"), message=error["message"], param=error.get("param"))]
        return [self._event("response.failed", response=response)]

    # -- items -----------------------------------------------------------------------------------------------

    def _open_message(self) -> list[dict[str, Any]]:
        index, self._next_index, self._had_message = self._next_index, self._next_index + 1, True
        self._message_index = index
        item = view.message_item(self._suffix, None, "in_progress")
        return [
            self._event("response.output_item.added", output_index=index, item=item),
            self._event("response.content_part.added", **self._text_at(), part=view.text_part("")),
        ]

    def _open_call(self, delta: dict[str, Any]) -> list[dict[str, Any]]:
        index, self._next_index = self._next_index, self._next_index + 1
        call = {"id": delta["id"], "function": {"name": delta["function"]["name"], "arguments": ""}}
        self._call = {"id": view.call_id(self._suffix, self._calls), "index": index, "call": call, "arguments": ""}
        item = view.call_item(self._suffix, self._calls, call, "in_progress")
        self._calls += 1
        return [self._event("response.output_item.added", output_index=index, item=item)]

    def _close_open(self, status: str) -> list[dict[str, Any]]:
        out = []
        if self._message is not None:
            text, where = self._message, self._text_at()
            out += [
                self._event("response.output_text.done", **where, text=text, logprobs=[]),
                self._event("response.content_part.done", **where, part=view.text_part(text)),
                self._event("response.output_item.done", output_index=where["output_index"],
                            item=view.message_item(self._suffix, text, status)),
            ]  # fmt: skip
            self._message = None
        if self._call is not None:
            call, arguments = self._call, self._call["arguments"]
            where = {"item_id": call["id"], "output_index": call["index"]}
            name = call["call"]["function"]["name"]
            done = {**call["call"], "function": {"name": name, "arguments": arguments}}
            item = view.call_item(self._suffix, self._calls - 1, done, status)
            out += [
                self._event("response.function_call_arguments.done", **where, name=name, arguments=arguments),
                self._event("response.output_item.done", output_index=call["index"], item=item),
            ]
            self._call = None
        return out

    def _text_at(self) -> dict[str, Any]:
        return {"item_id": view.message_id(self._suffix), "output_index": self._message_index, "content_index": 0}

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return event


def frame(event: dict[str, Any]) -> bytes:
    """One event as Server-Sent Events frame it for the Responses API: named by its type."""
    return sse(event, name=event["type"])


class ResponseWriter:
    """The Responder's writer for a streamed foreground response (its job has started when it opens)."""

    def __init__(self, stream: ResponseEvents) -> None:
        self._stream = stream

    def opening(self) -> bytes:
        return b"".join(map(frame, self._stream.opening() + self._stream.started()))

    def token(self, text: str, index: int = 0, logprobs: Any = None, calls: Any = None) -> bytes:
        return b"".join(map(frame, self._stream.token(events.Token(text, index, logprobs, calls))))

    def closing(self, response: dict[str, Any]) -> bytes:
        return b"".join(map(frame, self._stream.closing(events.Done(response))))

    def error(self, error: dict[str, Any]) -> bytes:
        return b"".join(map(frame, self._stream.failed(events.Failed(500, error))))
