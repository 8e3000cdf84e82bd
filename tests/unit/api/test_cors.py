"""CORS (LLAMAQ_CORS_ORIGINS): preflights answered without a key, headers on every answer, errors included."""

from collections.abc import Iterator

import pytest

from api.middleware.cors import EXPOSED
from tests.fakes import MODEL
from tests.harness import CHAT, SyncApp, sync_app

APP = "https://app.example"
KEY = "sk-browser"
AUTH = {"Authorization": f"Bearer {KEY}"}
CHAT_PATH = "/v1/chat/completions"
# What the official JS client asks for on a preflight (its x-stainless-* names change between releases).
ASKED = "authorization,content-type,idempotency-key,openai-organization,openai-project,x-stainless-os"


def preflight(harness: SyncApp, origin: str, headers: str = ASKED, path: str = CHAT_PATH) -> dict[str, str]:
    ask = {"Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": headers}
    response = harness.http.options(path, headers=ask)
    return {"status": str(response.status_code), **{k.lower(): v for k, v in response.headers.items()}}


@pytest.fixture
def cors() -> Iterator[SyncApp]:
    with sync_app(cors_origins=f"{APP},http://localhost:5173", api_keys=KEY, max_batch_queue_depth=1) as harness:
        yield harness


def test_a_preflight_from_an_allowed_origin_is_answered_without_a_key(cors: SyncApp) -> None:
    answer = preflight(cors, APP)
    assert answer["status"] == "200"
    assert answer["access-control-allow-origin"] == APP
    assert {"GET", "POST", "DELETE"} <= {m.strip() for m in answer["access-control-allow-methods"].split(",")}
    assert answer["access-control-allow-headers"] == ASKED
    assert "access-control-allow-credentials" not in answer


def test_a_preflight_from_another_origin_gets_no_allow_headers(cors: SyncApp) -> None:
    answer = preflight(cors, "https://evil.example")
    assert answer["status"] == "400"
    assert not [name for name in answer if name.startswith("access-control-allow-origin")]


def test_a_real_request_from_an_allowed_origin_needs_the_key_and_can_read_the_answer(cors: SyncApp) -> None:
    origin = {"Origin": APP}
    refused = cors.http.post(CHAT_PATH, json=CHAT, headers=origin)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
    listed = cors.http.get("/v1/models", headers={**origin, **AUTH})
    assert listed.status_code == 200 and MODEL in {model["id"] for model in listed.json()["data"]}
    for response in (refused, listed):
        assert response.headers["access-control-allow-origin"] == APP
        assert response.headers["access-control-expose-headers"] == ", ".join(EXPOSED)
        assert "Origin" in response.headers["vary"]
        assert response.headers["x-request-id"]


def test_error_answers_carry_the_cors_headers(cors: SyncApp) -> None:
    headers = {"Origin": APP, **AUTH}
    bad = cors.http.post(CHAT_PATH, json={"model": MODEL}, headers=headers)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "messages"
    too_large = cors.http.post(CHAT_PATH, content=b"x" * 2_000_000, headers=headers)
    assert too_large.status_code == 413
    cors.submit(None, **headers)
    full = cors.http.post("/v1/jobs", json={"endpoint": CHAT_PATH, "body": CHAT}, headers=headers)
    assert full.status_code == 429 and full.headers["retry-after"]
    for response in (bad, too_large, full):
        assert response.headers["access-control-allow-origin"] == APP, response.status_code
        assert "Retry-After" in response.headers["access-control-expose-headers"]


def test_a_request_from_another_origin_is_not_allowed_to_read_the_answer(cors: SyncApp) -> None:
    response = cors.http.get("/v1/models", headers={"Origin": "https://evil.example", **AUTH})
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers, "the browser keeps the answer from the script"


def test_any_origin_with_a_star() -> None:
    with sync_app(cors_origins="*") as harness:
        answer = preflight(harness, "https://anywhere.example")
        assert answer["status"] == "200" and answer["access-control-allow-origin"] == "*"
        response = harness.http.get("/v1/models", headers={"Origin": "https://anywhere.example"})
        assert response.headers["access-control-allow-origin"] == "*"


def test_without_origins_no_cors_headers_at_all() -> None:
    with sync_app(api_keys=KEY) as harness:
        answer = preflight(harness, APP)
        assert answer["status"] == "405", "no route answers OPTIONS"
        refused = harness.http.post(CHAT_PATH, json=CHAT, headers={"Origin": APP})
        listed = harness.http.get("/v1/models", headers={"Origin": APP, **AUTH})
        assert refused.status_code == 401 and listed.status_code == 200
        for headers in (answer, refused.headers, listed.headers):
            assert not [name for name in headers if name.lower().startswith("access-control-")]
