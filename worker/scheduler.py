"""The engine thread of a worker: every llama.cpp call, and the hand-off of each job's text to its job thread.

A worker runs one RQ job thread per slot (worker/runner.py) and this one engine thread. A job thread
asks the scheduler to prepare its job (chat template, tokens, context check, grammar), then reads its
text pieces. The engine thread admits prepared jobs into free slots of the `SlotEngine`, steps every
generating sequence together, and turns each sequence's tokens into text (UTF-8 pieces, stop strings,
finish reason). A job thread that stops reading (cancelled, timed out, failed) ends its sequence
before the next step, so the others go on unchanged.
"""

import codecs
import logging
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from shared.errors import LlamaqError, Unavailable
from shared.payload import JobPayload, Params
from worker.engine import Engine, Prepared, Progress, StopMatcher
from worker.inbox import EngineInbox
from worker.slots import Sequence, SlotEngine, SlotRequest, TokenOut

logger = logging.getLogger(__name__)


class _End:
    """Marks the end of a job's pieces (each choice's finish reason is in its `Progress`)."""


_END = _End()


class Piece(str):
    """Text of one choice (`choice`), with the logprob entries of the tokens it completes (OpenAI's shape)
    and the choice's tokens generated up to it (`tokens`: the engine thread may already be further on)."""

    choice: int
    logprobs: list[dict[str, Any]] | None
    tokens: int

    def __new__(
        cls, text: str, choice: int = 0, logprobs: list[dict[str, Any]] | None = None, tokens: int = 0
    ) -> "Piece":
        piece = super().__new__(cls, text)
        piece.choice, piece.logprobs, piece.tokens = choice, logprobs, tokens
        return piece


@dataclass(eq=False)
class _Choice:
    """One choice of a job: its sequence, text state and progress."""

    index: int
    progress: Progress
    stops: StopMatcher
    decoder: Any = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")(errors="replace"))
    sequence: Sequence | None = None
    pending: list[dict[str, Any]] = field(default_factory=list)  # logprob entries of text held back
    done: bool = False


@dataclass(eq=False)
class _Stream:
    """One job's generation as the engine thread keeps it: `n` choices from one prompt pass."""

    prepared: Prepared
    params: Params
    choices: list[_Choice]
    out: "queue.SimpleQueue[Piece | _End | BaseException]" = field(default_factory=queue.SimpleQueue)
    ended: bool = False


class SlotScheduler:
    """What job threads call (`prepare`, `generate`) and what the engine thread runs (`run`)."""

    kind = "chat"

    def __init__(self, engine: Engine, slots: SlotEngine, wait_seconds: float) -> None:
        self.engine = engine
        self.slots = slots
        self.max_token_bytes = engine.max_token_bytes
        self.n_ctx = slots.per_slot_ctx
        self._inbox = EngineInbox(wait_seconds)
        self._waiting: list[_Stream] = []  # prepared, not yet in a slot
        self._active: dict[Sequence, tuple[_Stream, _Choice]] = {}

    def model_info(self) -> dict[str, str | int]:
        """What the worker's heartbeat writes to the model's info hash."""
        return {"kind": self.kind, "n_ctx": self.n_ctx, "max_token_bytes": self.max_token_bytes}

    # -- job threads -----------------------------------------------------------------------------------------

    def prepare(self, job: JobPayload) -> Prepared:
        """The job's prompt tokens, stops and budget, computed on the engine thread (tokenizing is llama.cpp's)."""
        return self._inbox.call(lambda: self.engine.prepare(job))

    def generate(self, prepared: Prepared, params: Params, *progress: Progress) -> Iterator[Piece]:
        """Yield the job's text pieces as the engine thread produces them; closing it ends the sequences.

        One `Progress` a choice: `params.n` of them (each piece names its `choice`).
        """
        if prepared.max_tokens == 0:
            return
        choices = [_Choice(index, each, StopMatcher(prepared.stops)) for index, each in enumerate(progress)]
        stream = _Stream(prepared, params, choices)
        self._inbox.put(lambda: self._waiting.append(stream))
        try:
            while True:
                try:
                    item = stream.out.get(timeout=self._inbox.wait)
                except queue.Empty:
                    raise Unavailable("The worker's engine stopped answering.") from None
                if isinstance(item, _End):
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self._inbox.put(lambda: self._end(stream))

    def close(self) -> None:
        """Free the slot engine (on the engine thread, once it has stopped running)."""
        self.slots.close()

    # -- the engine thread -----------------------------------------------------------------------------------

    def run(self, stopping: threading.Event) -> None:
        """Serve until `stopping` is set and no job is left in a slot or waiting for one."""
        while not (stopping.is_set() and not self._active and not self._waiting):
            self._inbox.drain(block=not self._active and not self._waiting)
            self._admit()
            if self._active:
                try:
                    outs = self.slots.step()
                except Exception as exc:
                    logger.exception("llama.cpp step failed; failing the jobs in the slots")
                    self._fail_active(LlamaqError("The worker failed while generating.", code="internal_error"), exc)
                    continue
                for out in outs:
                    self._route(out)

    def _admit(self) -> None:
        while self._waiting and self.slots.free_slots() >= len(self._waiting[0].choices):
            stream = self._waiting.pop(0)
            if stream.ended:
                continue
            params = stream.params
            request = SlotRequest(
                tokens=stream.prepared.tokens,
                max_tokens=stream.prepared.max_tokens,
                temperature=params.temperature,
                top_p=params.top_p,
                presence_penalty=params.presence_penalty,
                frequency_penalty=params.frequency_penalty,
                seed=params.seed,
                grammar=stream.prepared.grammar,
                logprobs=params.logprobs,
                top_logprobs=params.top_logprobs,
            )
            try:
                sequences = self.slots.start(request, n=len(stream.choices))
            except Exception as exc:
                self._close(stream, exc)
                continue
            for choice, sequence in zip(stream.choices, sequences, strict=True):
                choice.sequence = sequence
                choice.progress.cached_tokens = sequence.cached_tokens
                self._active[sequence] = (stream, choice)

    def _route(self, out: TokenOut) -> None:
        found = self._active.get(out.sequence)
        if found is None:  # its job thread ended it within this step
            return
        stream, choice = found
        progress = choice.progress
        if out.eog:
            progress.finish_reason = "stop"
            self._finish(stream, choice)
            return
        progress.completion_tokens += 1
        raw = self.engine.llama.detokenize([out.token])
        if out.logprob is not None:
            choice.pending.append(self._logprob_entry(raw, out))
        piece, hit = choice.stops.feed(choice.decoder.decode(raw))
        if piece:
            self._put(stream, choice, piece)
        if hit:
            progress.finish_reason = "stop"
            self._finish(stream, choice)
        elif out.finish_reason is not None:
            self._finish(stream, choice)

    def _logprob_entry(self, raw: bytes, out: TokenOut) -> dict[str, Any]:
        """OpenAI's entry for one token: its text, logprob, bytes, and the most likely alternatives."""

        def entry(text: bytes, logprob: float) -> dict[str, Any]:
            return {"token": text.decode("utf-8", errors="replace"), "logprob": logprob, "bytes": list(text)}

        alternatives = [entry(self.engine.llama.detokenize([token]), lp) for token, lp in out.top_logprobs]
        return {**entry(raw, out.logprob or 0.0), "top_logprobs": alternatives}

    def _put(self, stream: _Stream, choice: _Choice, text: str) -> None:
        logprobs = None
        if stream.params.logprobs:
            logprobs, choice.pending = choice.pending, []
            choice.progress.logprobs.extend(logprobs)
        choice.progress.text.append(text)
        stream.out.put(Piece(text, choice.index, logprobs, choice.progress.completion_tokens))

    def _finish(self, stream: _Stream, choice: _Choice) -> None:
        """The choice is done: its held-back tail goes out; once every choice is, the end."""
        choice.done = True
        if choice.sequence is not None:
            self._active.pop(choice.sequence, None)
            self.slots.finish(choice.sequence)
        tail = choice.stops.flush(choice.decoder.decode(b"", final=True))
        if tail or choice.pending:
            self._put(stream, choice, tail)
        if all(each.done for each in stream.choices):
            self._close(stream, _END)

    def _end(self, stream: _Stream) -> None:
        """The job thread stopped reading: free its slot now (a no-op once the sequence finished)."""
        if not stream.ended:
            self._close(stream, None)

    def _close(self, stream: _Stream, last: _End | BaseException | None) -> None:
        stream.ended = True
        for choice in stream.choices:
            if choice.sequence is not None:
                self._active.pop(choice.sequence, None)
                self.slots.finish(choice.sequence)
        if last is not None:
            stream.out.put(last)

    def _fail_active(self, error: LlamaqError, cause: BaseException) -> None:
        error.__cause__ = cause
        for stream in {stream for stream, _ in self._active.values()}:
            self._close(stream, error)
