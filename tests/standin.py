"""A stand-in worker for API tests on fakeredis: no model, no RQ, the real CLAIM and EMIT scripts.

It takes job ids off a lane and writes their events as the real worker does, so job views, batch
bookkeeping, event streams and waiting callers see a worker's writes, step by step when a test
needs to stop between them (`start`, `tokens`, `finish`, `fail`) or whole (`run`, `drain_once`).
"""

import time
from dataclasses import dataclass, field
from typing import Any

import fakeredis

from shared import events, names, objects, rqcontract
from shared.emission import emission
from shared.payload import response_id
from shared.settings import Settings
from shared.states import Status
from worker.sink import Scripts


@dataclass
class StandInWorker:
    redis: fakeredis.FakeRedis
    settings: Settings
    model: str
    name: str = "stand-in"
    attempts: dict[str, int] = field(default_factory=dict)

    @property
    def scripts(self) -> Scripts:
        return Scripts(self.redis)

    def pop(self, lane: str = names.BATCH) -> str | None:
        raw = self.redis.lpop(rqcontract.queue_key(self.model, lane))
        return raw.decode() if raw else None

    def take(self, lane: str = names.BATCH, timeout: float = 10.0) -> str:
        """The next job of the lane, waiting for the batch runner to enqueue one."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job_id = self.pop(lane)
            if job_id:
                return job_id
            time.sleep(0.01)
        raise AssertionError(f"nothing was enqueued on the {lane} lane")

    def start(self, job_id: str) -> bool:
        """Claim and announce the job, as the worker does before its first token; False when refused."""
        keys = [names.job_key(job_id), names.heartbeat_key(job_id)]
        attempt = int(self.scripts.claim(keys=keys, args=[self.name, time.time(), self.settings.heartbeat_ttl]))
        if attempt < 0:
            return False
        self.attempts[job_id] = attempt
        self.emit(job_id, events.Started(self.name, 3, attempt))
        return True

    def emit(self, job_id: str, event: events.Event, terminal: Status | None = None) -> int:
        """EMIT's answer: -1 refused, 0 appended, 1 appended and cancellation requested."""
        attempt = self.attempts.get(job_id, "")
        keys, args = emission(self.settings, job_id, event, attempt=attempt, terminal=terminal)
        return int(self.scripts.emit(keys=keys, args=args))

    def tokens(self, job_id: str, pieces: list[str]) -> list[int]:
        return [self.emit(job_id, events.Token(piece)) for piece in pieces]

    def finish(self, job_id: str, text: str = "ok") -> dict[str, Any]:
        kind, created = (value.decode() for value in self.redis.hmget(names.job_key(job_id), ["kind", "created_at"]))
        build = objects.chat_completion if kind == "chat" else objects.text_completion
        response = build(response_id(job_id, kind), self.model, int(float(created)), text, "stop", objects.usage(3, 1))
        self.emit(job_id, events.Done(response), Status.COMPLETED)
        return response

    def fail(self, job_id: str, status: int = 400, code: str = "context_length_exceeded") -> None:
        event = events.Failed.of(status, "invalid_request_error", code, "The prompt is too long.", "messages")
        self.emit(job_id, event, Status.FAILED)

    def run(self, job_id: str, text: str = "ok") -> dict[str, Any]:
        assert self.start(job_id)
        self.tokens(job_id, [text])
        return self.finish(job_id, text)

    def drain_once(self) -> None:
        """End every job waiting on either lane with the reply "ok"; jobs cancelled meanwhile are skipped."""
        for lane in names.LANES:
            while (job_id := self.pop(lane)) is not None:
                if self.start(job_id):
                    self.tokens(job_id, ["ok"])
                    self.finish(job_id)
