"""API keys on every /v1 route, open health, protected metrics; Redis reached through an ACL user's URL."""

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import orjson
import pytest
from redis import Redis
from redis.exceptions import AuthenticationError, ResponseError

from tests.integration.secured import ADMIN_PASSWORD, USER, password_redis
from tests.probes import wait_for
from tests.stack import MODEL, Stack, running_stack

pytestmark = pytest.mark.integration

KEYS = ("key-one", "key-two")


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    directory = tmp_path_factory.mktemp("secured")
    with (
        password_redis(directory / "redis") as url,
        running_stack(url, directory / "logs", API_KEYS=",".join(KEYS), METRICS_AUTH="true", LOG_JSON="true") as stack,
    ):
        yield stack


def v1_routes(stack: Stack, key: str) -> list[tuple[str, str]]:
    spec = httpx.get(f"{stack.base_url}/openapi.json", headers={"Authorization": f"Bearer {key}"}, timeout=5).json()
    return [
        (method.upper(), re.sub(r"\{[^}]+\}", "x1", path))
        for path, operations in spec["paths"].items()
        if path.startswith("/v1")
        for method in operations
    ]


def assert_unauthorized(reply: httpx.Response) -> None:
    assert reply.status_code == 401, (reply.request.method, reply.request.url, reply.text)
    error = reply.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "invalid_api_key" or error["type"] in ("invalid_request_error", "authentication_error")


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic a2V5LW9uZQ=="}])
def test_every_v1_route_requires_a_bearer_key(secured: Stack, headers: dict[str, str]) -> None:
    routes = v1_routes(secured, KEYS[0])
    assert len(routes) >= 5
    with httpx.Client(base_url=secured.base_url, timeout=10) as http:
        for method, path in routes:
            assert_unauthorized(http.request(method, path, json={}, headers=headers))


def test_the_official_client_with_a_key_gets_through(secured: Stack) -> None:
    for key in KEYS:
        client = openai.OpenAI(base_url=f"{secured.base_url}/v1", api_key=key, max_retries=0, timeout=60)
        reply = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=3)
        assert reply.choices[0].finish_reason in ("stop", "length")
    wrong = openai.OpenAI(base_url=f"{secured.base_url}/v1", api_key="nope", max_retries=0, timeout=60)
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()


def test_health_stays_open_and_metrics_can_be_protected(secured: Stack) -> None:
    assert httpx.get(f"{secured.base_url}/health/live", timeout=5).status_code == 200
    ready = httpx.get(f"{secured.base_url}/health/ready", timeout=5)
    assert ready.status_code == 200 and ready.json()["redis"] == "ok"
    assert_unauthorized(httpx.get(f"{secured.base_url}/metrics", timeout=5))
    scraped = httpx.get(f"{secured.base_url}/metrics", headers={"Authorization": f"Bearer {KEYS[1]}"}, timeout=5)
    assert scraped.status_code == 200 and "llamaq_workers_alive" in scraped.text


def test_redis_requires_the_credentials_in_the_url(secured: Stack) -> None:
    anonymous = re.sub(r"//[^@]+@", "//", secured.redis_url)
    with Redis.from_url(anonymous) as client, pytest.raises((AuthenticationError, ResponseError)):
        client.ping()
    with Redis.from_url(anonymous, password=ADMIN_PASSWORD) as admin:
        # The API and the worker are connected, and as the ACL user the URL names.
        users = [entry.get("user") for entry in admin.client_list()]
    assert users.count(USER) >= 2


def test_json_logs_are_one_object_per_line(secured: Stack) -> None:
    assert secured.logs is not None
    httpx.get(f"{secured.base_url}/health/live", headers={"X-Request-ID": "json-check-1"}, timeout=5)

    def logged() -> list[str] | None:
        # The request line is written once the response has gone out: it may land a moment after.
        lines = Path(secured.logs / "api.log").read_text().splitlines()
        return lines if any('"json-check-1"' in line for line in lines) else None

    lines = wait_for(logged, "the request's log line", timeout=10)
    records = [orjson.loads(line) for line in lines if line.startswith("{")]
    assert records and len(records) == len(lines)
    assert any(record.get("request_id") == "json-check-1" and record["msg"] == "request" for record in records)


def test_a_stored_response_is_seen_by_its_own_key_only(secured: Stack) -> None:
    own, other = (
        openai.OpenAI(base_url=f"{secured.base_url}/v1", api_key=key, max_retries=0, timeout=60) for key in KEYS
    )
    made = own.responses.create(model=MODEL, input="Hi", max_output_tokens=4, background=True)
    assert own.responses.retrieve(made.id).id == made.id
    for attempt in (
        lambda: other.responses.retrieve(made.id),
        lambda: other.responses.cancel(made.id),
        lambda: other.responses.delete(made.id),
        lambda: other.responses.input_items.list(made.id),
        lambda: other.responses.create(model=MODEL, input="And?", previous_response_id=made.id),
    ):
        with pytest.raises((openai.NotFoundError, openai.BadRequestError)):
            attempt()
    assert own.responses.retrieve(made.id).id == made.id
