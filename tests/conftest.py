"""Shared fixtures. Integration tests use a real redis-server, real workers and the official client."""

import itertools
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from redis import Redis

from shared.redis_server import RedisServer
from tests.fakes import stop_engines
from tests.stack import Stack, running_stack

_db = itertools.count(1)


@pytest.fixture(autouse=True)
def _fake_engines_stopped() -> Iterator[None]:
    """The fake engine loops a test started end with it."""
    yield
    stop_engines()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"), persist=False)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def stack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One API and one worker with default settings, shared by the tests that need nothing special."""
    with running_stack(redis_server.url, tmp_path_factory.mktemp("stack")) as running:
        yield running


@pytest.fixture
def fresh_redis_url(redis_server: RedisServer) -> Iterator[str]:
    """A Redis database of its own (db 1..15), flushed before use, for tests that start their own stack."""
    db = next(_db) % 15 + 1
    url = f"unix://{redis_server.socket}?db={db}"
    with Redis.from_url(url) as client:
        client.flushdb()
    yield url


@pytest.fixture
def base(stack: Stack) -> str:
    """The shared stack's OpenAI base URL, for the frameworks that take one."""
    return f"{stack.base_url}/v1"


@pytest.fixture
def client(stack: Stack) -> Iterator[openai.OpenAI]:
    # Closed after each test: a pooled socket left to the garbage collector is a ResourceWarning, an error here.
    with openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key="unused", max_retries=0, timeout=60) as client:
        yield client


@pytest.fixture
def logs_dir(tmp_path: Path) -> Path:
    return tmp_path / "logs"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Long runs (`slow`) are left out unless asked for with `-m slow`."""
    if "slow" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
