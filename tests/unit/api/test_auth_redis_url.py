"""LLAMAQ_REDIS_URL carries Redis credentials and TLS (`rediss://`) to the API's client unchanged."""

from redis.asyncio.connection import SSLConnection

from api.app import redis_client
from shared.settings import Settings


async def test_rediss_url_gives_a_tls_client_with_the_acl_user() -> None:
    client = redis_client(Settings(redis_url="rediss://llamaq:s3cret@redis.internal:6380/2?ssl_cert_reqs=required"))
    try:
        pool = client.connection_pool
        assert pool.connection_class is SSLConnection
        assert pool.connection_kwargs["username"] == "llamaq"
        assert pool.connection_kwargs["password"] == "s3cret"
        assert pool.connection_kwargs["host"] == "redis.internal" and pool.connection_kwargs["port"] == 6380
        assert pool.connection_kwargs["db"] == 2
    finally:
        await client.aclose()


async def test_password_only_url() -> None:
    client = redis_client(Settings(redis_url="redis://:only-password@127.0.0.1:6379/0"))
    try:
        assert client.connection_pool.connection_kwargs["password"] == "only-password"
        assert client.connection_pool.connection_class is not SSLConnection
    finally:
        await client.aclose()
