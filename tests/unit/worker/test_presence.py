"""A worker's heartbeat publishes its model's facts and the queue limits its own environment sets."""

import fakeredis

from shared import names
from tests.fakes import MODEL, make_context, make_engine, make_settings
from worker.presence import Presence


def _info(redis: fakeredis.FakeRedis) -> dict[bytes, bytes]:
    return redis.hgetall(names.model_info_key(MODEL))


def test_limits_set_on_the_worker_are_published_and_withdrawn_when_unset() -> None:
    redis = fakeredis.FakeRedis()
    engine = make_engine(max_token_bytes=8)
    Presence(make_context(redis, engine, make_settings(max_queue_depth=3, max_batch_queue_depth=30))).beat()
    assert _info(redis) == {
        b"kind": b"chat",
        b"n_ctx": str(engine.n_ctx).encode(),
        b"max_token_bytes": b"8",
        b"max_queue_depth": b"3",
        b"max_batch_queue_depth": b"30",
    }
    redis.hset(names.model_info_key(MODEL), "kind", "chat")  # written by whoever knows the kind: left alone
    Presence(make_context(redis, engine, make_settings(max_queue_depth=5))).beat()
    assert _info(redis)[b"max_queue_depth"] == b"5" and b"max_batch_queue_depth" not in _info(redis)
    Presence(make_context(redis, engine, make_settings())).beat()
    assert set(_info(redis)) == {b"n_ctx", b"max_token_bytes", b"kind"}
