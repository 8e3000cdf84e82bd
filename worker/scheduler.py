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
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

from shared.errors import LlamaqError, Unavailable
from shared.payload import JobPayload, Params
from worker.engine import Engine, Prepared, Progress, StopMatcher
from worker.slots import Sequence, SlotEngine, SlotRequest, TokenOut

logger = logging.getLogger(__name__)

T = TypeVar("T")
# How long an idle engine thread waits for work before it looks at its stop flag again.
IDLE_POLL_SECONDS = 0.2


class _End:
    """Marks the end of a job's pieces (its finish reason is in its `Progress`)."""


_END = _End()


@dataclass(eq=False)
class _Stream:
    """One job's generation as the engine thread keeps it."""

    prepared: Prepared
    params: Params
    progress: Progress
    out: "queue.SimpleQueue[str | _End | BaseException]" = field(default_factory=queue.SimpleQueue)
    stops: StopMatcher = field(init=False)
    decoder: Any = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")(errors="replace"))
    sequence: Sequence | None = None
    ended: bool = False

    def __post_init__(self) -> None:
        self.stops = StopMatcher(self.prepared.stops)


class SlotScheduler:
    """What job threads call (`prepare`, `generate`) and what the engine thread runs (`run`)."""

    def __init__(self, engine: Engine, slots: SlotEngine, wait_seconds: float) -> None:
        self.engine = engine
        self.slots = slots
        self.max_token_bytes = engine.max_token_bytes
        self.n_ctx = slots.per_slot_ctx
        self._wait = wait_seconds  # the longest a job thread waits for the engine thread at one time
        self._inbox: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._waiting: list[_Stream] = []  # prepared, not yet in a slot
        self._active: dict[Sequence, _Stream] = {}

    # -- job threads -----------------------------------------------------------------------------------------

    def prepare(self, job: JobPayload) -> Prepared:
        """The job's prompt tokens, stops and budget, computed on the engine thread (tokenizing is llama.cpp's)."""
        return self._call(lambda: self.engine.prepare(job))

    def generate(self, prepared: Prepared, params: Params, progress: Progress) -> Iterator[str]:
        """Yield the job's text pieces as the engine thread produces them; closing it ends the sequence."""
        if prepared.max_tokens == 0:
            return
        stream = _Stream(prepared, params, progress)
        self._inbox.put(lambda: self._waiting.append(stream))
        try:
            while True:
                try:
                    item = stream.out.get(timeout=self._wait)
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

    def _call(self, work: Callable[[], T]) -> T:
        done: Future[T] = Future()

        def run() -> None:
            try:
                done.set_result(work())
            except BaseException as exc:
                done.set_exception(exc)

        self._inbox.put(run)
        try:
            return done.result(timeout=self._wait)
        except TimeoutError:
            raise Unavailable("The worker's engine stopped answering.") from None

    # -- the engine thread -----------------------------------------------------------------------------------

    def run(self, stopping: threading.Event) -> None:
        """Serve until `stopping` is set and no job is left in a slot or waiting for one."""
        while not (stopping.is_set() and not self._active and not self._waiting):
            self._take_requests(block=not self._active and not self._waiting)
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

    def _take_requests(self, block: bool) -> None:
        try:
            work = self._inbox.get(timeout=IDLE_POLL_SECONDS) if block else self._inbox.get_nowait()
        except queue.Empty:
            return
        while True:
            work()
            try:
                work = self._inbox.get_nowait()
            except queue.Empty:
                return

    def _admit(self) -> None:
        while self._waiting and self.slots.free_slots():
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
            )
            try:
                (sequence,) = self.slots.start(request)
            except Exception as exc:
                self._close(stream, exc)
                continue
            stream.sequence = sequence
            stream.progress.cached_tokens = sequence.cached_tokens
            self._active[sequence] = stream

    def _route(self, out: TokenOut) -> None:
        stream = self._active.get(out.sequence)
        if stream is None:  # its job thread ended it within this step
            return
        progress = stream.progress
        if out.eog:
            progress.finish_reason = "stop"
            self._finish(stream)
            return
        progress.completion_tokens += 1
        piece, hit = stream.stops.feed(stream.decoder.decode(self.engine.llama.detokenize([out.token])))
        if piece:
            progress.text.append(piece)
            stream.out.put(piece)
        if hit:
            progress.finish_reason = "stop"
            self._finish(stream)
        elif out.finish_reason is not None:
            self._finish(stream)

    def _finish(self, stream: _Stream) -> None:
        """The sequence is done: the held-back tail goes out, then the end."""
        tail = stream.stops.flush(stream.decoder.decode(b"", final=True))
        if tail:
            stream.progress.text.append(tail)
            stream.out.put(tail)
        self._close(stream, _END)

    def _end(self, stream: _Stream) -> None:
        """The job thread stopped reading: free its slot now (a no-op once the sequence finished)."""
        if not stream.ended:
            self._close(stream, None)

    def _close(self, stream: _Stream, last: _End | BaseException | None) -> None:
        stream.ended = True
        if stream.sequence is not None:
            self._active.pop(stream.sequence, None)
            self.slots.finish(stream.sequence)
        if last is not None:
            stream.out.put(last)

    def _fail_active(self, error: LlamaqError, cause: BaseException) -> None:
        error.__cause__ = cause
        for stream in list(self._active.values()):
            self._close(stream, error)
