"""What a worker builds once at start-up and hands to every job."""

import threading
from dataclasses import dataclass, field

from redis import Redis

from shared.settings import Settings
from worker.engine import Engine
from worker.sink import Scripts


@dataclass
class Current:
    """The job this worker is generating, read by the heartbeat thread."""

    job_id: str | None = None
    tokens: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class WorkerContext:
    settings: Settings
    redis: Redis
    engine: Engine
    scripts: Scripts
    name: str
    current: Current = field(default_factory=Current)
