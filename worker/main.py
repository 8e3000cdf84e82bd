"""`llamaq worker`: load one model, warm it, serve its queues with `LLAMAQ_SLOTS` slots until told to stop."""

import logging
import os
import secrets
import signal
import socket
import threading
import time
from types import FrameType

from redis import Redis
from redis.exceptions import RedisError

from shared.logs import configure_logging
from shared.redis_client import sync_client
from shared.settings import Settings
from shared.tracing import Tracing
from worker.context import WorkerContext
from worker.embed_model import load_embed_scheduler
from worker.embed_scheduler import EmbedScheduler
from worker.memory import hand_back_freed_memory
from worker.model import load_scheduler
from worker.presence import Presence
from worker.runner import SlotLoops
from worker.scheduler import SlotScheduler
from worker.sink import Scripts

logger = logging.getLogger(__name__)


def main(settings: Settings) -> None:
    configure_logging(settings)
    if not settings.redis_url:
        raise SystemExit("LLAMAQ_REDIS_URL is not set (llamaq up sets it for you)")
    redis = sync_client(settings.redis_url, health_check_interval=30, socket_connect_timeout=2, socket_timeout=30)
    hand_back_freed_memory()
    scheduler = load_embed_scheduler(settings) if settings.embedding else load_scheduler(settings)
    tracing = Tracing.build(settings, "llamaq-worker")
    context = WorkerContext(settings, redis, scheduler, Scripts(redis), _worker_name(), tracing=tracing)
    presence = Presence(context)
    presence.start()
    if settings.ready_file:
        settings.ready_file.touch()
    logger.info(
        "worker ready",
        extra={"worker": context.name, "model": settings.model_name, "slots": settings.slots, "kind": scheduler.kind},
    )
    try:
        serve(settings, redis, context, scheduler)
    finally:
        presence.stop()
        scheduler.close()
        tracing.shutdown()  # exports the spans still buffered
        if settings.ready_file:
            settings.ready_file.unlink(missing_ok=True)


def serve(settings: Settings, redis: Redis, context: WorkerContext, scheduler: SlotScheduler | EmbedScheduler) -> None:
    """Run one RQ loop a slot and, on this thread, the engine, until a signal asks to stop and the jobs in hand end.

    The first SIGTERM or SIGINT is a warm stop (no new job; the running ones finish), a second one a cold stop.
    """
    loops = SlotLoops(settings, redis, context, lambda: _wait_for_redis(redis))
    finished = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if loops.stop.is_set():
            logger.warning("second stop signal: stopping now")
            raise SystemExit(1)
        logger.info("stop requested: finishing the jobs in hand", extra={"signal": signal.Signals(signum).name})
        loops.ask_to_stop()

    def watch() -> None:
        while loops.alive():
            loops.join(timeout=1.0)
        finished.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    loops.start()
    threading.Thread(target=watch, name="llamaq-slots-watch", daemon=True).start()
    scheduler.run(finished)


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
