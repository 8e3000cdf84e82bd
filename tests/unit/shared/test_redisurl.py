"""`redis+sentinel://` URLs: parsed, refused with a reason, and turned into master-only clients."""

import pytest
from pydantic import ValidationError
from redis.asyncio.sentinel import SentinelConnectionPool as AsyncSentinelPool
from redis.sentinel import SentinelConnectionPool

from shared.redis_client import async_client, sync_client
from shared.redisurl import SentinelTarget, is_sentinel, parse_sentinel
from shared.settings import Settings


def test_full_form() -> None:
    target = parse_sentinel("redis+sentinel://llamaq:p%40ss@s1:26380,[::1],s3/mymaster/2")
    assert target == SentinelTarget(
        sentinels=(("s1", 26380), ("::1", 26379), ("s3", 26379)),
        service="mymaster",
        db=2,
        username="llamaq",
        password="p@ss",
    )


def test_password_only_and_default_db() -> None:
    target = parse_sentinel("redis+sentinel://:secret@127.0.0.1:26379/llamaq")
    assert (target.username, target.password, target.db) == (None, "secret", 0)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("redis+sentinel:///mymaster", "at least one sentinel"),
        ("redis+sentinel://s1:26379", "service name"),
        ("redis+sentinel://s1:26379/a/b/c", "service name"),
        ("redis+sentinel://s1:26379/mymaster/zero", "is a number"),
        ("redis+sentinel://s1:port/mymaster", "bad sentinel address"),
        ("redis+sentinel://s1/mymaster?x=1", "takes no"),
    ],
)
def test_refused(url: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_sentinel(url)


def test_settings_refuse_a_bad_sentinel_url() -> None:
    with pytest.raises(ValidationError, match="service name"):
        Settings(redis_url="redis+sentinel://s1:26379")
    assert Settings(redis_url="redis+sentinel://s1/m").redis_url == "redis+sentinel://s1/m"


def test_plain_urls_are_not_sentinel() -> None:
    assert not is_sentinel("redis://127.0.0.1:6379/0")
    assert not is_sentinel("unix:///run/redis.sock?db=0")
    assert is_sentinel("REDIS+SENTINEL://s1/m")


def test_sync_client_follows_the_master() -> None:
    client = sync_client("redis+sentinel://:pw@s1:1,s2:2/mymaster/3", socket_connect_timeout=0.5, socket_timeout=5)
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    assert pool.is_master and pool.service_name == "mymaster"
    assert pool.connection_kwargs["db"] == 3 and pool.connection_kwargs["password"] == "pw"
    sentinels = pool.sentinel_manager.sentinels
    assert [s.connection_pool.connection_kwargs["port"] for s in sentinels] == [1, 2]
    assert sentinels[0].connection_pool.connection_kwargs["socket_timeout"] == 0.5
    client.close()


async def test_async_client_follows_the_master() -> None:
    client = async_client("redis+sentinel://s1:1/mymaster", max_connections=7, socket_connect_timeout=0.5)
    pool = client.connection_pool
    assert isinstance(pool, AsyncSentinelPool)
    assert pool.is_master and pool.service_name == "mymaster" and pool.max_connections == 7
    await client.aclose()


def test_plain_url_unchanged() -> None:
    client = sync_client("redis://127.0.0.1:6390/4")
    assert client.connection_pool.connection_kwargs["db"] == 4
    client.close()
