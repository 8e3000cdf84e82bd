"""`EngineInbox`: how job threads hand work to a worker's engine thread, the one thread that calls llama.cpp."""

import queue
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar

from shared.errors import Unavailable

T = TypeVar("T")
# How long an idle engine thread waits for work before it looks at its stop flag again.
IDLE_POLL_SECONDS = 0.2


class EngineInbox:
    def __init__(self, wait_seconds: float) -> None:
        self.wait = wait_seconds  # the longest a job thread waits for the engine thread at one time
        self._queue: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()

    def put(self, work: Callable[[], None]) -> None:
        """Run `work` on the engine thread at its next look at the inbox."""
        self._queue.put(work)

    def call(self, work: Callable[[], T]) -> T:
        """Run `work` on the engine thread and return its result (or raise its error); 503 past the wait."""
        done: Future[T] = Future()

        def run() -> None:
            try:
                done.set_result(work())
            except BaseException as exc:
                done.set_exception(exc)

        self._queue.put(run)
        try:
            return done.result(timeout=self.wait)
        except TimeoutError:
            raise Unavailable("The worker's engine stopped answering.") from None

    def drain(self, block: bool) -> None:
        """On the engine thread: run everything waiting (first waiting up to a poll for something, if `block`)."""
        try:
            work = self._queue.get(timeout=IDLE_POLL_SECONDS) if block else self._queue.get_nowait()
        except queue.Empty:
            return
        while True:
            work()
            try:
                work = self._queue.get_nowait()
            except queue.Empty:
                return
