"""Job events as they travel through Redis: a token, a start, a retry, or one terminal event.

Each kind is a typed event here; on the wire it stays a compact JSON object whose `k` names the kind
(`{"k": "t", "x": "Hel"}`), the same object `GET /v1/jobs/{id}/events` shows. On the live channel
an event travels as `<seq>|<json>`, and in the replay stream as the fields `s` (seq) and `e` (json):
the sequence number is assigned inside Redis, so readers detect gaps and duplicates between the two.
"""

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

import orjson

# Field names of a replay-stream entry (the Lua scripts write them).
STREAM_SEQ = "s"
STREAM_EVENT = "e"


class Kind(StrEnum):
    TOKEN = "t"
    STARTED = "s"
    RETRY = "r"
    DONE = "d"
    ERROR = "e"

    @property
    def ends_job(self) -> bool:
        """A job has exactly one event of an ending kind, its last."""
        return self in (Kind.DONE, Kind.ERROR)


@dataclass(frozen=True, slots=True)
class Token:
    """Text of one choice (`i`, sent when not 0), when asked for its tokens' logprobs (`lp`), and the pieces
    of tool calls it wrote (`tc`: OpenAI's `delta.tool_calls` entries)."""

    text: str
    index: int = 0
    logprobs: list[dict[str, Any]] | None = None
    calls: list[dict[str, Any]] | None = None
    kind: ClassVar[Kind] = Kind.TOKEN

    def wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"k": self.kind, "x": self.text}
        if self.index:
            wire["i"] = self.index
        if self.logprobs is not None:
            wire["lp"] = self.logprobs
        if self.calls:
            wire["tc"] = self.calls
        return wire


@dataclass(frozen=True, slots=True)
class Started:
    worker: str
    prompt_tokens: int
    attempt: int
    kind: ClassVar[Kind] = Kind.STARTED

    def wire(self) -> dict[str, Any]:
        return {"k": self.kind, "worker": self.worker, "prompt_tokens": self.prompt_tokens, "attempt": self.attempt}


@dataclass(frozen=True, slots=True)
class Retry:
    attempt: int
    reason: str
    kind: ClassVar[Kind] = Kind.RETRY

    def wire(self) -> dict[str, Any]:
        return {"k": self.kind, "attempt": self.attempt, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Done:
    response: dict[str, Any]
    kind: ClassVar[Kind] = Kind.DONE

    def wire(self) -> dict[str, Any]:
        return {"k": self.kind, "response": self.response}


@dataclass(frozen=True, slots=True)
class Failed:
    """The terminal error: an HTTP status and OpenAI error object; `partial` keeps what was generated before it."""

    status: int
    error: dict[str, Any]
    partial: dict[str, Any] | None = None
    kind: ClassVar[Kind] = Kind.ERROR

    @classmethod
    def of(
        cls,
        status: int,
        type_: str,
        code: str | None,
        message: str,
        param: str | None = None,
        partial: dict[str, Any] | None = None,
    ) -> "Failed":
        return cls(status, {"message": message, "type": type_, "param": param, "code": code}, partial)

    def wire(self) -> dict[str, Any]:
        return {"k": self.kind, "status": self.status, "error": self.error, "partial": self.partial}


Event = Token | Started | Retry | Done | Failed


@dataclass(frozen=True, slots=True)
class StopReason:
    """Why llamaq itself ends a job (a cancel, a batch's window): the terminal error it gets."""

    status: int
    code: str
    message: str

    def event(self) -> Failed:
        return Failed.of(self.status, "invalid_request_error", self.code, self.message)


def encode(event: Event) -> bytes:
    return orjson.dumps(event.wire())


def parse(wire: dict[str, Any]) -> Event:
    """The typed event of a wire object."""
    kind = Kind(wire["k"])
    if kind is Kind.TOKEN:
        return Token(wire["x"], int(wire.get("i", 0)), wire.get("lp"), wire.get("tc"))
    if kind is Kind.STARTED:
        return Started(wire["worker"], int(wire["prompt_tokens"]), int(wire["attempt"]))
    if kind is Kind.RETRY:
        return Retry(int(wire["attempt"]), wire["reason"])
    if kind is Kind.DONE:
        return Done(wire["response"])
    return Failed(int(wire["status"]), wire["error"], wire.get("partial"))


def decode(raw: bytes) -> tuple[int, Event]:
    """Split `<seq>|<json>` into its sequence number and event."""
    head, _, body = raw.partition(b"|")
    return int(head), parse(orjson.loads(body))


def decode_entry(fields: dict[bytes, bytes]) -> tuple[int, Event]:
    """The sequence number and event of a replay-stream entry."""
    return int(fields[STREAM_SEQ.encode()]), parse(orjson.loads(fields[STREAM_EVENT.encode()]))
