"""Periodic upkeep, one API instance at a time: orphaned jobs (dead workers) and expired batches.

A running job whose heartbeat key expired lost its worker: background and batch jobs go back to the
front of their lane (bounded attempts), others end with a `worker_lost` error. Either way RQ's
started registry forgets it. A job popped by a worker that died before claiming it goes back too.
"""

import asyncio
import logging
import secrets

from redis.asyncio import Redis
from redis.exceptions import RedisError

from api import rqrecords
from api.batch_runner import BatchRunner
from api.cancel import fail_lost
from api.stopping import stop_task
from api.unclaimed import rescue_unclaimed
from shared import events, names
from shared.rqcontract import JobStatus
from shared.scripts import REAP, ReapOutcome
from shared.settings import Settings

logger = logging.getLogger(__name__)


class Reaper:
    def __init__(self, redis: Redis, settings: Settings, batches: BatchRunner, interval: float = 2.0) -> None:
        self.redis = redis
        self.settings = settings
        self.batches = batches
        self.interval = interval
        self._reap = redis.register_script(REAP)
        self._token = secrets.token_hex(8)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="llamaq-reaper")

    async def stop(self) -> None:
        await stop_task(self._task)

    async def _loop(self) -> None:
        while True:
            try:
                if await self.redis.set(names.reaper_lock_key(), self._token, nx=True, px=int(self.interval * 1000)):
                    await self.sweep()
                    await self.batches.expire_due()
            except (RedisError, OSError):
                logger.warning("upkeep skipped: Redis unavailable")
            except Exception:
                logger.exception("upkeep failed")
            await asyncio.sleep(self.interval)

    async def sweep(self) -> int:
        """Handle every started job without a heartbeat; returns how many were requeued or failed."""
        handled = 0
        for raw in await self.redis.hkeys(names.models_key()):
            model = raw.decode()
            for lane in names.LANES:
                for job_id in await rqrecords.started_job_ids(self.redis, model, lane):
                    handled += await self._reap_one(job_id, model, lane)
                handled += await rescue_unclaimed(self.redis, model, lane, self.settings.heartbeat_ttl)
        return handled

    async def _reap_one(self, job_id: str, model: str, lane: str) -> int:
        retries = self.settings.job_retries if lane != names.INTERACTIVE else 0
        keys = [
            names.job_key(job_id), names.heartbeat_key(job_id), names.events_key(job_id), names.live_channel(job_id),
            *rqrecords.reap_keys(model, lane, job_id),
        ]  # fmt: skip
        attempt = int(await self.redis.hget(names.job_key(job_id), "attempt") or 0)
        retry = events.encode(events.Retry(attempt + 1, "worker_lost"))
        args = [retries, retry, self.settings.stream_maxlen, self.settings.result_ttl, job_id]
        outcome = ReapOutcome(int(await self._reap(keys=keys, args=args)))
        if outcome is ReapOutcome.REQUEUED:
            logger.warning("job requeued after its worker died", extra={"job_id": job_id, "attempt": attempt})
        elif outcome is ReapOutcome.OUT_OF_ATTEMPTS:
            await fail_lost(self.redis, self.settings, job_id, attempt)
            await rqrecords.set_status(self.redis, job_id, JobStatus.FAILED)
            logger.warning("job failed after its worker died", extra={"job_id": job_id, "attempt": attempt})
        return 0 if outcome is ReapOutcome.IDLE else 1
