"""`llamaq worker`: load one model, warm it, serve its queues until told to stop."""

import logging
import os
import secrets
import socket

from redis import Redis
from rq.serializers import JSONSerializer

from shared import names
from shared.logs import configure_logging
from shared.settings import Settings
from worker.context import WorkerContext
from worker.model import load_engine
from worker.presence import Presence
from worker.runner import LaneQueue, ModelWorker
from worker.sink import Scripts

logger = logging.getLogger(__name__)


def build_worker(settings: Settings, redis: Redis, context: WorkerContext) -> ModelWorker:
    queues = [
        LaneQueue(names.queue_name(settings.model_name, lane), connection=redis, serializer=JSONSerializer)
        for lane in names.LANES
    ]
    return ModelWorker(queues, context=context, serializer=JSONSerializer, log_job_description=False)


def main(settings: Settings) -> None:
    configure_logging(settings)
    if not settings.redis_url:
        raise SystemExit("LLAMAQ_REDIS_URL is not set (llamaq up sets it for you)")
    redis = Redis.from_url(settings.redis_url, health_check_interval=30)
    engine = load_engine(settings)
    name = f"{socket.gethostname()}.{os.getpid()}.{secrets.token_hex(3)}"
    context = WorkerContext(settings, redis, engine, Scripts(redis), name)
    worker = build_worker(settings, redis, context)
    presence = Presence(context)
    presence.start()
    if settings.ready_file:
        settings.ready_file.touch()
    logger.info("worker ready", extra={"worker": name, "model": settings.model_name})
    try:
        worker.work(logging_level=settings.log_level)
    finally:
        presence.stop()
        if settings.ready_file:
            settings.ready_file.unlink(missing_ok=True)
