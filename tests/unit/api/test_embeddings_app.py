"""POST /v1/embeddings in-process: the real app and RQ worker on fakeredis, the fake embedder, the official client."""

import base64

import numpy as np
import pytest

from shared import names, rqcontract
from shared.settings import DEFAULT_EMBEDDING_MODEL_NAME, DEFAULT_MODEL_NAME, Settings
from tests.fake_embedder import DIMENSIONS, FakeEmbedder, make_embed_engine, tokenize, vector
from tests.fakes import MODEL
from tests.harness import AsyncApp, async_app
from tests.probes import error_of
from tests.spec import assert_conforms


def announce(app: AsyncApp, per_input: int = 64) -> None:
    """What an embedding worker's heartbeat writes for MODEL."""
    info = make_embed_engine(FakeEmbedder(per_input=per_input)).model_info()
    app.redis.hset(names.model_info_key(MODEL), mapping=info)


async def test_text_texts_and_token_ids_with_the_openai_client() -> None:
    async with async_app(engine=make_embed_engine(), workers=1) as app:
        announce(app)
        one = await app.client.embeddings.create(model=MODEL, input="hello")
        many = await app.client.embeddings.create(model=MODEL, input=["a b", "c"], encoding_format="float")
        ids = await app.client.embeddings.create(model=MODEL, input=[[10, 11], [12]])
    assert np.allclose(one.data[0].embedding, vector(tokenize("hello")), atol=1e-6)  # sent and decoded as base64
    assert [len(item.embedding) for item in many.data] == [DIMENSIONS, DIMENSIONS]
    assert np.allclose(ids.data[1].embedding, vector([12]))
    assert (one.usage.prompt_tokens, many.usage.total_tokens, ids.usage.prompt_tokens) == (5, 4, 3)


async def test_the_wire_format_conforms_to_the_spec() -> None:
    async with async_app(engine=make_embed_engine(), workers=1) as app:
        announce(app)
        floats = await app.http.post("/v1/embeddings", json={"model": MODEL, "input": ["x", "yz"]})
        packed = await app.http.post(
            "/v1/embeddings", json={"model": MODEL, "input": "x", "encoding_format": "base64", "dimensions": 16}
        )
    assert floats.status_code == packed.status_code == 200
    assert_conforms("CreateEmbeddingResponse", floats.json())
    decoded = np.frombuffer(base64.b64decode(packed.json()["data"][0]["embedding"]), dtype="<f4")
    assert np.array_equal(decoded, np.array(floats.json()["data"][0]["embedding"], dtype=np.float32))


async def test_the_api_refuses_early_what_the_model_announced_it_cannot_take() -> None:
    async with async_app(workers=1) as app:  # nothing drains the queue: every refusal is the API's own
        announce(app, per_input=64)
        cases = {
            "dimensions": {"input": "x", "dimensions": 8},
            "input": {"input": [[1, 100_000]]},
        }
        for param, body in cases.items():
            error_of(await app.http.post("/v1/embeddings", json={"model": MODEL, **body}), param=param)
        too_long = await app.http.post("/v1/embeddings", json={"model": MODEL, "input": [[5] * 65]})
        error_of(too_long, param="input", code="context_length_exceeded")
        chat = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
        error_of(await app.http.post("/v1/chat/completions", json=chat), param="model", code="model_not_supported")
        assert app.job_count() == 0


async def test_a_full_queue_is_429_with_retry_after() -> None:
    async with async_app(workers=1, max_queue_depth=2) as app:
        announce(app)
        app.redis.rpush(rqcontract.queue_key(MODEL, names.INTERACTIVE), "job_a", "job_b")
        reply = await app.http.post("/v1/embeddings", json={"model": MODEL, "input": "x"})
    assert reply.status_code == 429 and int(reply.headers["retry-after"]) >= 1
    assert reply.json()["error"]["code"] == "queue_full"


async def test_an_unknown_model_is_404() -> None:
    async with async_app(workers=1) as app:
        reply = await app.http.post("/v1/embeddings", json={"model": "nope", "input": "x"})
    error_of(reply, 404, code="model_not_found")


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({}, DEFAULT_MODEL_NAME),
        ({"embedding": True}, DEFAULT_EMBEDDING_MODEL_NAME),
        ({"embedding": True, "model_path": "/models/bge-small-en.gguf"}, "bge-small-en"),
        ({"embedding": True, "model_name": "mine"}, "mine"),
    ],
)
def test_the_default_model_name_follows_the_kind(env: dict[str, object], name: str) -> None:
    assert Settings(**env).model_name == name  # type: ignore[arg-type]
