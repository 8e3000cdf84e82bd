"""What a worker builds once at start-up and hands to every job."""

import threading
from dataclasses import dataclass, field
from typing import Any

from redis import Redis

from shared.settings import Settings
from shared.tracing import Tracing
from worker.sink import Scripts


@dataclass
class Current:
    """The jobs this worker is generating (job id -> tokens so far), read by the heartbeat thread."""

    jobs: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def begin(self, job_id: str) -> None:
        with self.lock:
            self.jobs[job_id] = 0

    def tokens(self, job_id: str, count: int) -> None:
        with self.lock:
            self.jobs[job_id] = count

    def end(self, job_id: str) -> None:
        with self.lock:
            self.jobs.pop(job_id, None)

    def snapshot(self) -> dict[str, int]:
        with self.lock:
            return dict(self.jobs)


@dataclass
class WorkerContext:
    settings: Settings
    redis: Redis
    engine: Any  # the `SlotScheduler` (worker/scheduler.py): `prepare`, `generate`, `n_ctx`, `max_token_bytes`
    scripts: Scripts
    name: str
    current: Current = field(default_factory=Current)
    tracing: Tracing = field(default_factory=Tracing)  # a no-op unless LLAMAQ_TRACING=otlp
