"""`llamaq worker`: load one model, warm it, serve its queues until told to stop."""

import logging
import os
import secrets
import socket
import time

from redis import Redis
from redis.exceptions import RedisError

from shared.logs import configure_logging
from shared.settings import Settings
from worker.context import WorkerContext
from worker.memory import hand_back_freed_memory
from worker.model import load_engine
from worker.presence import Presence
from worker.runner import build_worker
from worker.sink import Scripts

logger = logging.getLogger(__name__)


def main(settings: Settings) -> None:
    configure_logging(settings)
    if not settings.redis_url:
        raise SystemExit("LLAMAQ_REDIS_URL is not set (llamaq up sets it for you)")
    redis = Redis.from_url(settings.redis_url, health_check_interval=30, socket_connect_timeout=2, socket_timeout=30)
    hand_back_freed_memory()
    engine = load_engine(settings)
    context = WorkerContext(settings, redis, engine, Scripts(redis), _worker_name())
    presence = Presence(context)
    presence.start()
    if settings.ready_file:
        settings.ready_file.touch()
    logger.info("worker ready", extra={"worker": context.name, "model": settings.model_name})
    try:
        serve(settings, redis, context)
    finally:
        presence.stop()
        if settings.ready_file:
            settings.ready_file.unlink(missing_ok=True)


def serve(settings: Settings, redis: Redis, context: WorkerContext) -> None:
    """Run RQ's loop until asked to stop; when Redis drops it, wait for Redis and start again."""
    while True:
        worker = build_worker(settings, redis, context)
        worker.work(logging_level=settings.log_level)
        if worker.stopped_on_request:
            return
        logger.warning("worker loop ended without a stop request; waiting for Redis to restart it")
        _wait_for_redis(redis)
        context.name = _worker_name()


def _wait_for_redis(redis: Redis) -> None:
    delay = 0.5
    while True:
        try:
            redis.ping()
            return
        except (RedisError, OSError):
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def _worker_name() -> str:
    return f"{socket.gethostname()}.{os.getpid()}.{secrets.token_hex(3)}"
