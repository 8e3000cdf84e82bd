"""Publishes one job's events to Redis: the live channel and the replay stream, in one round trip."""

import queue
import threading
import time
from typing import Any

from redis import Redis

from shared import events, names
from shared.emission import emission
from shared.errors import Cancelled, LlamaqError
from shared.scripts import CLAIM, EMIT, NOT_CLAIMED, EmitOutcome
from shared.settings import Settings
from shared.states import Status


class Refused(Exception):
    """Redis refused the event: the job finished elsewhere or this attempt is stale."""


class Scripts:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.emit = redis.register_script(EMIT)
        self.claim = redis.register_script(CLAIM)


class EventSink:
    def __init__(self, scripts: Scripts, settings: Settings, job_id: str) -> None:
        self._scripts = scripts
        self._settings = settings
        self._job_id = job_id
        self.attempt = 0
        self.finished = False
        self._tokens: TokenSender | None = None

    def claim(self, worker: str) -> bool:
        keys = [names.job_key(self._job_id), names.heartbeat_key(self._job_id)]
        args = [worker, time.time(), self._settings.heartbeat_ttl, self._settings.result_ttl]
        attempt = int(self._scripts.claim(keys=keys, args=args))
        if attempt == NOT_CLAIMED:
            return False
        self.attempt = attempt
        return True

    def _emit(self, event: events.Event, terminal: Status | None = None) -> bool:
        """Append an event; True when the job's cancellation was requested."""
        keys, args = emission(self._settings, self._job_id, event, attempt=self.attempt, terminal=terminal)
        result = EmitOutcome(int(self._scripts.emit(keys=keys, args=args)))
        if result is EmitOutcome.REFUSED:
            raise Refused(self._job_id)
        return result is EmitOutcome.CANCEL_REQUESTED

    def started(self, worker: str, prompt_tokens: int) -> bool:
        return self._emit(events.Started(worker, prompt_tokens, self.attempt))

    def begin(self, worker: str, prompt_tokens: int) -> bool:
        """Emit `started`; a job cancelled before it began ends here with its cancelled event (True)."""
        if not self.started(worker, prompt_tokens):
            return False
        self.error(Cancelled("The job was cancelled."), Status.CANCELLED)
        return True

    def token(
        self,
        text: str,
        index: int = 0,
        logprobs: list[dict[str, Any]] | None = None,
        calls: list[dict[str, Any]] | None = None,
    ) -> bool:
        """Queue a token event; True once a cancellation is seen (one token late: sends overlap decoding)."""
        if self._tokens is None:
            self._tokens = TokenSender(self._emit_tokens)
        return self._tokens.put(events.Token(text, index, logprobs, calls))

    def _emit_tokens(self, batch: list[events.Token]) -> bool:
        if len(batch) == 1:
            # The usual case; a pipeline would add a SCRIPT EXISTS round trip.
            return self._emit(batch[0])
        with self._scripts.redis.pipeline(transaction=False) as pipe:
            for event in batch:
                keys, args = emission(self._settings, self._job_id, event, attempt=self.attempt)
                self._scripts.emit(keys=keys, args=args, client=pipe)
            results = [EmitOutcome(int(result)) for result in pipe.execute()]
        if EmitOutcome.REFUSED in results:
            raise Refused(self._job_id)
        return EmitOutcome.CANCEL_REQUESTED in results

    def _flush(self) -> None:
        tokens, self._tokens = self._tokens, None
        if tokens is not None:
            tokens.close()

    def done(self, response: dict[str, Any]) -> None:
        self.finished = True
        self._flush()
        self._emit(events.Done(response), Status.COMPLETED)

    def error(self, exc: LlamaqError, status: Status = Status.FAILED, partial: dict[str, Any] | None = None) -> None:
        self.finished = True
        try:
            self._flush()
        finally:
            event = events.Failed.of(exc.status, exc.type, exc.code, exc.message, exc.param, partial)
            self._emit(event, status)


class TokenSender:
    """Sends a job's token events in order from a helper thread, so decoding overlaps the Redis round trip.

    At most one event is out at a time: a round trip slower than a decode step holds decoding back
    rather than letting it run ahead, so a cancellation is seen within a token however loaded the
    machine is. Only Redis I/O runs on the helper thread; llama.cpp stays on the worker's main thread.
    """

    def __init__(self, send: Any) -> None:
        self._send = send
        self._queue: queue.SimpleQueue[events.Token | None] = queue.SimpleQueue()
        self._cancelled = False
        self._failure: BaseException | None = None
        self._idle = threading.Event()
        self._idle.set()
        self._thread = threading.Thread(target=self._loop, name="llamaq-tokens", daemon=True)
        self._thread.start()

    def put(self, event: events.Token) -> bool:
        """Queue `event`; True when cancellation was requested. Re-raises a failed send (e.g. Refused)."""
        self._idle.wait()
        if self._failure is not None:
            raise self._failure
        self._idle.clear()
        self._queue.put(event)
        return self._cancelled

    def close(self) -> None:
        """Return once every queued event is in Redis; re-raises a failed send."""
        self._queue.put(None)
        self._thread.join()
        if self._failure is not None:
            raise self._failure

    def _loop(self) -> None:
        while True:
            batch = [self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            pending = [event for event in batch if event is not None]
            try:
                if pending and self._send(pending):
                    self._cancelled = True
            except BaseException as exc:
                # Stop sending: later tokens must not reach Redis out of order; the main thread re-raises.
                self._failure = exc
                self._idle.set()
                return
            self._idle.set()
            if None in batch:
                return
