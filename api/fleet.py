"""What the workers and queues look like right now, read from Redis at scrape time as Prometheus families."""

import time
from collections.abc import Iterator
from datetime import datetime

from prometheus_client.core import GaugeMetricFamily, Metric
from redis.asyncio import Redis

from api import capacity, rqrecords
from api.webhook_views import webhook_families
from shared import jobmetrics, names


async def fleet_families(redis: Redis) -> list[Metric]:
    """Queue depth and oldest-job age per model and lane, live and busy workers per model, job figures."""
    now = time.time()
    models = sorted(raw.decode() for raw in await redis.hkeys(names.models_key()))
    depth = GaugeMetricFamily("llamaq_queue_depth", "Jobs waiting in a lane's queue.", labels=["model", "lane"])
    age = GaugeMetricFamily(
        "llamaq_queue_oldest_age_seconds", "Age of the oldest waiting job (0: empty).", labels=["model", "lane"]
    )
    alive = GaugeMetricFamily("llamaq_workers_alive", "Workers heartbeating for a model.", labels=["model"])
    busy = GaugeMetricFamily("llamaq_workers_busy", "Live workers generating a job.", labels=["model"])
    slots = GaugeMetricFamily("llamaq_slots_total", "Jobs the live workers can generate at once.", labels=["model"])
    slots_busy = GaugeMetricFamily("llamaq_slots_busy", "Slots generating a job.", labels=["model"])
    for model in models:
        for lane in names.LANES:
            count, oldest = await _lane(redis, model, lane)
            depth.add_metric([model, lane], count)
            age.add_metric([model, lane], max(0.0, now - oldest) if oldest else 0.0)
        load = await capacity.load(redis, model)
        alive.add_metric([model], load.workers)
        busy.add_metric([model], load.busy_workers)
        slots.add_metric([model], load.slots)
        slots_busy.add_metric([model], load.busy_slots)
    figures = list(jobmetrics.families(await redis.hgetall(names.metrics_key())))
    return [depth, age, alive, busy, slots, slots_busy, *figures, *await webhook_families(redis)]


async def _lane(redis: Redis, model: str, lane: str) -> tuple[int, float | None]:
    """Waiting jobs and the enqueue time of the one at the head (RQ's `enqueued_at`)."""
    async with redis.pipeline(transaction=False) as pipe:
        rqrecords.queue_length(pipe, model, lane)
        rqrecords.queue_head(pipe, model, lane)
        count, head = await pipe.execute()
    if not head:
        return int(count), None
    stamp = await rqrecords.enqueued_at(redis, head.decode())
    return int(count), _unix(stamp)


def _unix(stamp: bytes | None) -> float | None:
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(stamp.decode()).timestamp()
    except ValueError:
        return None


class Snapshot:
    """A collector over families read beforehand: prometheus-client collectors are synchronous."""

    def __init__(self, *families: Iterator[Metric] | list[Metric]) -> None:
        self._families = [family for group in families for family in group]

    def collect(self) -> Iterator[Metric]:
        yield from self._families
