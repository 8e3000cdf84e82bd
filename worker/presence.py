"""The worker's presence in Redis: its registration under its model and its heartbeats.

Runs on its own thread so a long generation never starves the heartbeat; it does Redis I/O only,
never inference (llama.cpp stays on the engine thread). The worker registers once under its model
and each of its slots once under the model's capacity (`names.model_slots_key`); every job it is
generating gets its heartbeat key renewed.
"""

import logging
import os
import socket
import threading
import time
from typing import Any

from redis.exceptions import RedisError

from shared import modelinfo, names
from worker.context import WorkerContext

logger = logging.getLogger(__name__)


class Presence:
    def __init__(self, ctx: WorkerContext) -> None:
        self._ctx = ctx
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="llamaq-heartbeat", daemon=True)

    def start(self) -> None:
        try:
            self.beat()
        except (RedisError, OSError):
            logger.warning("first heartbeat failed: Redis unavailable; retrying in the background")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        model = self._ctx.settings.model_name
        try:
            with self._ctx.redis.pipeline() as pipe:
                pipe.zrem(names.model_workers_key(model), self._ctx.name)
                pipe.zrem(names.model_slots_key(model), *self._slot_names())
                pipe.delete(names.worker_key(self._ctx.name))
                pipe.execute()
        except (RedisError, OSError):
            logger.warning("could not deregister: Redis unavailable; the registration expires on its own")

    def _slot_names(self) -> list[str]:
        return [f"{self._ctx.name}/{slot}" for slot in range(self._ctx.settings.slots)]

    def beat(self) -> None:
        ctx, settings = self._ctx, self._ctx.settings
        ttl = settings.heartbeat_ttl
        jobs = ctx.current.snapshot()
        expiry = time.time() + ttl
        with ctx.redis.pipeline(transaction=False) as pipe:
            pipe.hsetnx(names.models_key(), settings.model_name, int(time.time()))
            pipe.zadd(names.model_workers_key(settings.model_name), {ctx.name: expiry})
            pipe.zadd(names.model_slots_key(settings.model_name), dict.fromkeys(self._slot_names(), expiry))
            pipe.hset(
                names.worker_key(ctx.name),
                mapping={
                    "model": settings.model_name,
                    "host": socket.gethostname(),
                    "pid": os.getpid(),
                    "state": "busy" if jobs else "idle",
                    "slots": settings.slots,
                    "slots_busy": len(jobs),
                    "job": ",".join(jobs),
                    "tokens": sum(jobs.values()),
                    "seen_at": time.time(),
                },
            )
            pipe.expire(names.worker_key(ctx.name), ttl)
            self._publish_info(pipe)
            for job_id in jobs:
                pipe.set(names.heartbeat_key(job_id), ctx.name, ex=ttl)
            pipe.execute()

    def _publish_info(self, pipe: Any) -> None:
        """The model's facts and the queue limits this worker's environment sets (shared/modelinfo.py)."""
        key = names.model_info_key(self._ctx.settings.model_name)
        limits, withdrawn = modelinfo.published_limits(self._ctx.settings)
        info: dict[str, int | str] = dict(limits)
        if self._ctx.engine.max_token_bytes:
            info.update(self._ctx.engine.model_info())  # kind, sizes; an embedding model's dimensions
        if info:
            pipe.hset(key, mapping=info)
        if withdrawn:
            pipe.hdel(key, *withdrawn)

    def _loop(self) -> None:
        while not self._stop.wait(self._ctx.settings.heartbeat_interval):
            try:
                self.beat()
            except Exception:
                logger.warning("heartbeat failed; retrying", exc_info=True)
