"""RQ, adapted: no fork, two lanes dequeued without loss, and the model handed to each job.

The worker's one door to RQ (the contract is `shared/rqcontract.py`): nothing else in `worker/`
imports RQ or reads its records.
"""

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, SimpleWorker, get_current_job
from rq.exceptions import DequeueTimeout
from rq.job import Job
from rq.utils import as_text

from shared import names
from shared.rqcontract import JSONSerializer
from shared.settings import Settings
from worker.context import WorkerContext

logger = logging.getLogger(__name__)

# Seconds an idle worker blocks on the interactive lane before it looks at the batch lane again.
LANE_POLL_SECONDS = 1


class LaneQueue(Queue):
    @classmethod
    def dequeue_any(  # type: ignore[override]
        cls,
        queues: Iterable[Queue],
        timeout: int | None,
        connection: Redis,
        job_class: type[Job] | None = None,
        serializer: Any = None,
        death_penalty_class: Any = None,
    ) -> tuple[Job, Queue] | None:
        """Take from the first non-empty lane, in priority order.

        Every pop is an atomic LMOVE into the queue's intermediate list (never BLPOP, which can lose
        a job between pop and registry, rq#1716); only the top lane is waited on with BLMOVE.
        """
        keys = [queue.key for queue in queues]
        rounds = max(1, (timeout or 0) // LANE_POLL_SECONDS)
        while True:
            result = cls._sweep(connection, keys, None if timeout is None else rounds)
            if result is None:
                return None
            queue_key, job_id = map(as_text, result)
            fetched = cls._fetch_dequeued_job(connection, queue_key, job_id, job_class, serializer, death_penalty_class)
            if fetched is not None:
                return fetched

    @classmethod
    def _sweep(cls, connection: Redis, keys: list[str], rounds: int | None) -> Any:
        """Non-blocking pass over all lanes, then a short wait on the top lane; repeated `rounds` times."""
        for _ in range(rounds or 1):
            result = next(filter(None, (cls.lmove(connection, key, None) for key in keys)), None)
            if result is not None or rounds is None:
                return result
            try:
                return cls.lmove(connection, keys[0], LANE_POLL_SECONDS)
            except DequeueTimeout:
                continue
        raise DequeueTimeout(LANE_POLL_SECONDS * (rounds or 1), keys)


class ModelJob(Job):
    """A job whose function receives the worker's context as its first argument."""

    context: WorkerContext | None = None

    def _execute(self) -> Any:
        return self.func(self.context, *self.args, **self.kwargs)


class ModelWorker(SimpleWorker):
    queue_class = LaneQueue
    job_class = ModelJob

    def __init__(self, queues: Sequence[Queue], *, context: WorkerContext, **kwargs: Any) -> None:
        super().__init__(list(queues), connection=context.redis, name=context.name, **kwargs)
        self.context = context
        # Reconnect to Redis within seconds once it is back, not after RQ's default minute.
        self.max_connection_wait_time = 5

    @property
    def dequeue_timeout(self) -> int:
        return LANE_POLL_SECONDS * 5

    def execute_job(self, job: Job, queue: Queue) -> None:
        if isinstance(job, ModelJob):
            job.context = self.context
        super().execute_job(job, queue)

    def prepare_job_execution(self, job: Job, remove_from_intermediate_queue: bool = False) -> None:
        # RQ leaves multi-queue jobs in the intermediate list; LaneQueue always moves, so always remove.
        super().prepare_job_execution(job, remove_from_intermediate_queue=True)

    def teardown(self) -> None:
        # RQ's loop ends on a lost Redis, then tears down by writing to that same Redis; the error would
        # escape `work()` and end the process. The caller waits for Redis and starts a new loop instead.
        try:
            super().teardown()
        except (RedisError, OSError):
            logger.warning("worker loop ended with Redis unreachable; not deregistered (the record expires)")

    @property
    def stopped_on_request(self) -> bool:
        """The loop ended because the worker was asked to stop (a signal), not because Redis went away."""
        return self._shutdown_requested_date is not None


def build_worker(settings: Settings, redis: Redis, context: WorkerContext) -> ModelWorker:
    """A worker on the model's lanes, interactive first; jobs travel as JSON (never pickle)."""
    queues = [
        LaneQueue(names.queue_name(settings.model_name, lane), connection=redis, serializer=JSONSerializer)
        for lane in names.LANES
    ]
    return ModelWorker(queues, context=context, serializer=JSONSerializer, log_job_description=False)


def enqueued_at() -> float | None:
    """Unix time the API enqueued the running RQ job (the API's clock), or None outside RQ."""
    stamp = getattr(get_current_job(), "enqueued_at", None)
    return stamp.timestamp() if stamp is not None else None
