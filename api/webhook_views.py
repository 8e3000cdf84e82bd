"""What webhook delivery looks like from outside: Prometheus families and the dead letters of an owner."""

from typing import Any

import orjson
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from redis.asyncio import Redis

from api.webhook_store import DEAD_MAXLEN, Outcome
from shared import names


async def webhook_families(redis: Redis) -> list[Metric]:
    """Attempts by outcome, deliveries pending (scheduled or not yet fanned out), dead letters kept."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(names.webhook_stats_key())
        pipe.zcard(names.webhook_schedule_key())
        pipe.llen(names.webhook_outbox_key())
        pipe.llen(names.webhook_dead_key())
        stats, scheduled, announced, dead = await pipe.execute()
    deliveries = CounterMetricFamily(
        "llamaq_webhook_deliveries", "Webhook delivery attempts by outcome.", labels=["outcome"]
    )
    for outcome in Outcome:
        deliveries.add_metric([outcome.value], int(stats.get(outcome.value.encode(), 0)))
    pending = GaugeMetricFamily(
        "llamaq_webhook_pending",
        "Webhook deliveries waiting (scheduled, in flight, or announced).",
        int(scheduled) + int(announced),
    )
    letters = GaugeMetricFamily(
        "llamaq_webhook_dead_letters", f"Deliveries given up on, kept (the latest {DEAD_MAXLEN}).", int(dead)
    )
    return [deliveries, pending, letters]


async def dead_letters(redis: Redis, owner: str | None, limit: int) -> list[dict[str, Any]]:
    """The newest dead letters, of `owner`'s objects only (all of them with None)."""
    letters = [orjson.loads(raw) for raw in await redis.lrange(names.webhook_dead_key(), 0, DEAD_MAXLEN - 1)]
    return [letter for letter in letters if owner is None or letter.get("owner") == owner][:limit]
