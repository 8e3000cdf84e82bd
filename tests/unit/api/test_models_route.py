"""Several models on one API: each listed with what it can do, each admitted against its own queue limit."""

import fakeredis
from prometheus_client.parser import text_string_to_metric_families

from shared import names, rqcontract
from tests.fakes import MODEL, register_worker
from tests.harness import CHAT, async_app, drain
from tests.spec import assert_conforms

OTHER = "other-model"


def _fill(redis: fakeredis.FakeRedis, model: str, count: int) -> None:
    redis.rpush(rqcontract.queue_key(model, names.INTERACTIVE), *[f"job_waiting{i}" for i in range(count)])


def _rejected(text: str, model: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "llamaq_rejected_requests_total" and sample.labels["model"] == model:
                return sample.value
    return 0.0


async def test_models_lists_each_model_with_its_kind_capabilities_size_and_limits() -> None:
    async with async_app(workers=2, max_queue_depth=5) as fake:
        register_worker(fake.redis, OTHER, workers=1, context=(512, 16))
        fake.redis.hset(names.model_info_key(OTHER), mapping={"kind": "embedding", "max_queue_depth": 2})
        raw = await fake.client.models.with_raw_response.list()
        body = raw.http_response.json()
        assert_conforms("ListModelsResponse", body)
        for entry in body["data"]:
            assert_conforms("Model", entry)
        listed = {model.id: model for model in raw.parse().data}  # the official client keeps the extra fields
        assert set(listed) == {MODEL, OTHER}
        chat, other = (listed[MODEL].model_dump(), listed[OTHER].model_dump())
        assert (chat["kind"], chat["capabilities"], chat["context_length"]) == ("chat", ["chat", "completions"], 2048)
        assert (chat["workers"], chat["slots"], chat["max_queue_depth"]) == (2, 2, 5)
        assert (other["kind"], other["capabilities"], other["context_length"]) == ("embedding", ["embeddings"], 512)
        assert (other["workers"], other["max_queue_depth"], other["max_batch_queue_depth"]) == (1, 2, 100_000)
        one = await fake.client.models.retrieve(OTHER)
        assert one.model_dump()["capabilities"] == ["embeddings"]


async def test_each_model_is_admitted_against_its_own_limit() -> None:
    async with async_app(workers=1, max_queue_depth=3) as fake:
        register_worker(fake.redis, OTHER, workers=1, context=(2048, 8))
        fake.redis.hset(names.model_info_key(OTHER), "max_queue_depth", 1)
        _fill(fake.redis, OTHER, 1)
        full = await fake.http.post("/v1/chat/completions", json={**CHAT, "model": OTHER})
        assert full.status_code == 429 and full.json()["error"]["code"] == "queue_full"
        assert int(full.headers["retry-after"]) >= 1
        assert fake.redis.llen(rqcontract.queue_key(OTHER, names.INTERACTIVE)) == 1
        async with drain(fake):
            answered = await fake.http.post("/v1/chat/completions", json=CHAT)
        assert answered.status_code == 200 and answered.json()["model"] == MODEL
        metrics = (await fake.http.get("/metrics")).text
        assert (_rejected(metrics, OTHER), _rejected(metrics, MODEL)) == (1.0, 0.0)
        # The API's own limit (3) still holds for the model whose workers publish none.
        _fill(fake.redis, MODEL, 3)
        assert (await fake.http.post("/v1/chat/completions", json=CHAT)).status_code == 429


async def test_a_name_only_the_client_gave_never_becomes_a_metrics_label() -> None:
    async with async_app(workers=1) as fake:
        reply = await fake.http.post("/v1/chat/completions", json={**CHAT, "model": "made-up"})
        assert reply.status_code == 404
        fake.redis.zadd(names.model_workers_key(MODEL), {"w0": 0})  # the only worker has gone: 503 for MODEL
        assert (await fake.http.post("/v1/chat/completions", json=CHAT)).status_code == 503
        metrics = (await fake.http.get("/metrics")).text
        assert "made-up" not in metrics and _rejected(metrics, MODEL) == 1.0


async def test_a_chat_request_for_an_embedding_model_is_refused_before_its_queue() -> None:
    async with async_app(workers=1) as fake:
        register_worker(fake.redis, OTHER, workers=1, context=(512, 16))
        fake.redis.hset(names.model_info_key(OTHER), "kind", "embedding")
        for path, body, param in (
            ("/v1/chat/completions", {**CHAT, "model": OTHER}, "model"),
            ("/v1/completions", {"model": OTHER, "prompt": "hi", "max_tokens": 2}, "model"),
            ("/v1/jobs", {"endpoint": "/v1/chat/completions", "body": {**CHAT, "model": OTHER}}, "body.model"),
        ):
            reply = await fake.http.post(path, json=body)
            assert reply.status_code == 400, (path, reply.text)
            error = reply.json()["error"]
            assert (error["code"], error["param"], error["type"]) == (
                "model_not_supported",
                param,
                "invalid_request_error",
            )
            assert "embeddings" in error["message"]
        assert all(fake.redis.llen(rqcontract.queue_key(OTHER, lane)) == 0 for lane in names.LANES)
