"""Embedding jobs run by the real RQ worker on fakeredis: one done event with the OpenAI list, or one error."""

import base64
import json
import time
from typing import Any

import fakeredis
import numpy as np

from shared import names
from shared.payload import JobPayload, new_job_id
from tests.fake_embedder import DIMENSIONS, FakeEmbedder, make_embed_engine, tokenize, vector
from tests.fakes import MODEL, chat_job, enqueue, make_context, make_engine, run_burst
from tests.spec import assert_conforms
from worker.context import WorkerContext
from worker.presence import Presence


def embed_context(redis: fakeredis.FakeRedis, embedder: FakeEmbedder | None = None) -> WorkerContext:
    return make_context(redis, make_embed_engine(embedder))  # type: ignore[arg-type]


def embedding_job(*inputs: str | list[int], encoding_format: str = "float") -> JobPayload:
    return JobPayload(
        id=new_job_id(), kind="embedding", model=MODEL, lane=names.INTERACTIVE, created=int(time.time()),
        input=list(inputs), encoding_format=encoding_format,
    )  # fmt: skip


def events(redis: fakeredis.FakeRedis, job: JobPayload) -> list[dict[str, Any]]:
    return [json.loads(fields[b"e"]) for _, fields in redis.xrange(names.events_key(job.id))]


def test_an_embedding_job_ends_with_one_done_event(server: fakeredis.FakeServer, redis: fakeredis.FakeRedis) -> None:
    job = embedding_job("hello", "world!")
    enqueue(server, job)
    run_burst(embed_context(redis))
    found = events(redis, job)
    assert [event["k"] for event in found] == ["s", "d"]
    response = found[-1]["response"]
    assert_conforms("CreateEmbeddingResponse", response)
    assert [item["index"] for item in response["data"]] == [0, 1]
    assert np.allclose(response["data"][1]["embedding"], vector(tokenize("world!")))
    assert response["usage"] == {"prompt_tokens": 11, "total_tokens": 11} and found[0]["prompt_tokens"] == 11
    assert redis.hget(names.job_key(job.id), "status") == b"completed"


def test_base64_is_little_endian_float32(server: fakeredis.FakeServer, redis: fakeredis.FakeRedis) -> None:
    job = embedding_job([10, 20, 30], encoding_format="base64")
    enqueue(server, job)
    run_burst(embed_context(redis))
    packed = events(redis, job)[-1]["response"]["data"][0]["embedding"]
    decoded = np.frombuffer(base64.b64decode(packed), dtype="<f4")
    assert decoded.shape == (DIMENSIONS,) and np.array_equal(decoded, vector([10, 20, 30]).astype("<f4"))


def test_bad_input_ends_in_one_error_event(server: fakeredis.FakeServer, redis: fakeredis.FakeRedis) -> None:
    job = embedding_job([1, 99_999])
    enqueue(server, job)
    run_burst(embed_context(redis))
    found = events(redis, job)
    assert [event["k"] for event in found] == ["e"]
    assert found[0]["error"]["param"] == "input" and found[0]["error"]["code"] == "invalid_token_id"


def test_a_job_of_the_other_kind_is_refused_by_the_worker(
    server: fakeredis.FakeServer, redis: fakeredis.FakeRedis
) -> None:
    """A job queued before the model's workers changed kind: refused with a 400 naming the model, never run."""
    chat, embed = chat_job("hi"), embedding_job("hi")
    enqueue(server, chat)
    run_burst(embed_context(redis))
    enqueue(server, embed)
    run_burst(make_context(redis, make_engine()))
    for job in (chat, embed):
        (event,) = events(redis, job)
        assert event["k"] == "e" and event["error"]["param"] == "model" and MODEL in event["error"]["message"]


def test_the_heartbeat_announces_an_embedding_model(redis: fakeredis.FakeRedis) -> None:
    Presence(embed_context(redis, FakeEmbedder(per_input=64))).beat()
    info = redis.hgetall(names.model_info_key(MODEL))
    assert info[b"kind"] == b"embedding" and int(info[b"dimensions"]) == DIMENSIONS and int(info[b"n_ctx"]) == 64
    Presence(make_context(redis, make_engine())).beat()
    assert redis.hget(names.model_info_key(MODEL), "kind") == b"chat"
