"""Worker unit tests' Redis: one fakeredis server, with MODEL registered as served (modules may override `redis`)."""

from collections.abc import Iterator

import fakeredis
import pytest

from tests.fakes import register_worker


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
def redis(server: fakeredis.FakeServer) -> Iterator[fakeredis.FakeRedis]:
    client = fakeredis.FakeRedis(server=server)
    register_worker(client)
    yield client
    client.close()
