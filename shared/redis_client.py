"""Every Redis client llamaq opens: one door, so a Sentinel failover is followed by the API, relay, workers and RQ.

With a `redis+sentinel://` URL each new connection asks the sentinels for the current master, and a connection
to a master since demoted (READONLY) is dropped; reads and writes always go to the master, never to a replica.
"""

from typing import Any

from redis import Redis
from redis import sentinel as sync_sentinel
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio import sentinel as async_sentinel

from shared.redisurl import SentinelTarget, is_sentinel, parse_sentinel


def sync_client(url: str, **options: Any) -> Redis:
    """A blocking client (workers, RQ, the dashboard); `options` are redis-py connection options."""
    if not is_sentinel(url):
        return Redis.from_url(url, **options)
    target = parse_sentinel(url)
    manager = sync_sentinel.Sentinel(list(target.sentinels), sentinel_kwargs=_sentinel_options(target, options))
    return manager.master_for(target.service, redis_class=Redis, **_master_options(target, options))


def async_client(url: str, **options: Any) -> AsyncRedis:
    """An asyncio client (the API and its relay); `options` are redis-py connection options."""
    if not is_sentinel(url):
        return AsyncRedis.from_url(url, **options)
    target = parse_sentinel(url)
    manager = async_sentinel.Sentinel(list(target.sentinels), sentinel_kwargs=_sentinel_options(target, options))
    return manager.master_for(target.service, redis_class=AsyncRedis, **_master_options(target, options))


def _sentinel_options(target: SentinelTarget, options: dict[str, Any]) -> dict[str, Any]:
    # A sentinel answers at once or is down: asking it never waits longer than a connection attempt.
    timeout = options.get("socket_connect_timeout") or 1.0
    return {"socket_connect_timeout": timeout, "socket_timeout": timeout}


def _master_options(target: SentinelTarget, options: dict[str, Any]) -> dict[str, Any]:
    return {**options, "db": target.db, "username": target.username, "password": target.password}
