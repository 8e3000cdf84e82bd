"""RQ, adapted: no fork, two lanes dequeued without loss, one RQ loop a slot, and the model handed to each job.

A worker process runs one RQ worker loop per slot, each on its own thread, so up to `LLAMAQ_SLOTS`
jobs keep their own RQ records, registries and priority while the engine thread generates them
together. The worker's one door to RQ (the contract is `shared/rqcontract.py`): nothing else in
`worker/` imports RQ or reads its records.
"""

import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, SimpleWorker, get_current_job
from rq.exceptions import DequeueTimeout, StopRequested
from rq.job import Job
from rq.timeouts import TimerDeathPenalty
from rq.utils import as_text, now

from shared import names
from shared.rqcontract import JSONSerializer
from shared.settings import Settings
from worker.context import WorkerContext

logger = logging.getLogger(__name__)

# Seconds an idle worker blocks on the interactive lane before it looks at the batch lane again.
LANE_POLL_SECONDS = 1


class LaneQueue(Queue):
    stop: threading.Event | None = None  # set: an idle worker on this lane stops within a lane poll

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
        queues = list(queues)
        keys = [queue.key for queue in queues]
        rounds = max(1, (timeout or 0) // LANE_POLL_SECONDS)
        stop = next((queue.stop for queue in queues if isinstance(queue, LaneQueue) and queue.stop), None)
        while True:
            result = cls._sweep(connection, keys, None if timeout is None else rounds, stop)
            if result is None:
                return None
            queue_key, job_id = map(as_text, result)
            fetched = cls._fetch_dequeued_job(connection, queue_key, job_id, job_class, serializer, death_penalty_class)
            if fetched is not None:
                return fetched

    @classmethod
    def _sweep(cls, connection: Redis, keys: list[str], rounds: int | None, stop: threading.Event | None) -> Any:
        """Non-blocking pass over all lanes, then a short wait on the top lane; repeated `rounds` times."""
        for _ in range(rounds or 1):
            if stop is not None and stop.is_set():
                raise StopRequested()
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

    def __init__(self, queues: Sequence[Queue], *, context: WorkerContext, name: str, **kwargs: Any) -> None:
        super().__init__(list(queues), connection=context.redis, name=name, **kwargs)
        self.context = context
        if threading.current_thread() is not threading.main_thread():
            # RQ's default death penalty is SIGALRM, which only the main thread receives.
            self.death_penalty_class = TimerDeathPenalty
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

    def _install_signal_handlers(self) -> None:
        # Signals reach the main thread only; there the worker's own handlers stop every slot (`ask_to_stop`).
        if threading.current_thread() is threading.main_thread():
            super()._install_signal_handlers()

    def ask_to_stop(self) -> None:
        """Warm stop from another thread: finish the job in hand, take no other."""
        self._shutdown_requested_date = now()
        self._stop_requested = True

    @property
    def stopped_on_request(self) -> bool:
        """The loop ended because the worker was asked to stop (a signal), not because Redis went away."""
        return self._shutdown_requested_date is not None


def build_worker(
    settings: Settings, redis: Redis, context: WorkerContext, name: str, stop: threading.Event | None = None
) -> ModelWorker:
    """A worker on the model's lanes, interactive first; jobs travel as JSON (never pickle)."""
    queues = [
        LaneQueue(names.queue_name(settings.model_name, lane), connection=redis, serializer=JSONSerializer)
        for lane in names.LANES
    ]
    for queue in queues:
        queue.stop = stop
    return ModelWorker(queues, context=context, name=name, serializer=JSONSerializer, log_job_description=False)


class SlotLoops:
    """One RQ worker loop per slot, each on its own thread; a loop that Redis ended starts again once Redis is back."""

    def __init__(self, settings: Settings, redis: Redis, context: WorkerContext, wait_for_redis: Callable[[], None]):
        self._settings, self._redis, self._context = settings, redis, context
        self._wait_for_redis = wait_for_redis
        self.stop = threading.Event()
        self._workers: dict[int, ModelWorker] = {}
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._serve, args=(slot,), name=f"llamaq-slot-{slot}", daemon=True)
            for slot in range(settings.slots)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def ask_to_stop(self) -> None:
        self.stop.set()
        with self._lock:
            for worker in self._workers.values():
                worker.ask_to_stop()

    def alive(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _serve(self, slot: int) -> None:
        while not self.stop.is_set():
            # A fresh RQ name each loop: a Redis restarted from its AOF may still hold the last loop's record.
            name = f"{self._context.name}.{slot}.{secrets.token_hex(2)}"
            worker = build_worker(self._settings, self._redis, self._context, name, self.stop)
            with self._lock:
                self._workers[slot] = worker
            try:
                worker.work(logging_level=self._settings.log_level)
            except Exception:
                logger.exception("slot loop failed", extra={"slot": slot})
            if self.stop.is_set() or worker.stopped_on_request:
                return
            logger.warning("worker loop ended without a stop request; waiting for Redis to restart it")
            self._wait_for_redis()


def enqueued_at() -> float | None:
    """Unix time the API enqueued the running RQ job (the API's clock), or None outside RQ."""
    stamp = getattr(get_current_job(), "enqueued_at", None)
    return stamp.timestamp() if stamp is not None else None
