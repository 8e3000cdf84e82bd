"""The dashboard's guard and scrubbing, without Redis: credentials, read-only mode, escaping."""

import base64

import httpx
import pytest
from pydantic import SecretStr
from starlette.types import Receive, Scope, Send

from api.dashboard import HIDDEN_CALL, scrub, standalone
from api.middleware.dashboard_guard import DashboardGuard, presented_secret
from shared.keys import key_matches
from shared.settings import Settings


def basic(password: str, user: str = "ops") -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def inner(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"inner"})


def guarded(**settings: object) -> httpx.AsyncClient:
    app = DashboardGuard(inner, Settings(redis_url="redis://unused", **settings))  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def test_credentials_are_read_from_basic_or_bearer() -> None:
    assert presented_secret(basic("s3:cret")) == "s3:cret"
    assert presented_secret("Bearer tok") == "tok"
    assert presented_secret("Basic !!notbase64") is None
    assert presented_secret(basic("")) is None
    assert presented_secret("Digest abc") is None
    assert key_matches("b", ["a", "b"]) and not key_matches("c", ["a", "b"]) and not key_matches(None, ["a"])
    assert not key_matches("", [""]), "an empty key never matches"


async def test_dashboard_keys_take_precedence_over_api_keys() -> None:
    keys = {"api_keys": [SecretStr("api")], "dashboard_keys": [SecretStr("dash")]}
    async with guarded(**keys) as client:
        assert (await client.get("/", headers={"Authorization": basic("api")})).status_code == 401
        assert (await client.get("/", headers={"Authorization": basic("dash")})).text == "inner"
    async with guarded(api_keys=[SecretStr("api")]) as client:
        assert (await client.get("/", headers={"Authorization": "Bearer api"})).text == "inner"


async def test_without_any_key_the_dashboard_is_off() -> None:
    async with guarded() as client:
        reply = await client.get("/")
    assert reply.status_code == 403 and reply.json()["error"]["code"] == "dashboard_disabled"


@pytest.mark.parametrize(("method", "path"), [("POST", "/job/j/delete"), ("GET", "/requeue/q"), ("DELETE", "/x")])
async def test_actions_need_to_be_enabled(method: str, path: str) -> None:
    auth = {"Authorization": basic("k")}
    async with guarded(api_keys=[SecretStr("k")]) as client:
        assert (await client.request(method, path, headers=auth)).status_code == 403
    async with guarded(api_keys=[SecretStr("k")], dashboard_actions=True) as client:
        assert (await client.request(method, path, headers=auth)).text == "inner"


def test_scrub_escapes_every_string_and_hides_call_strings() -> None:
    data = {"workers": [{"name": "<b>w</b>", "current_job": {"call_string": "run({'x': 1})", "n": 3}}]}
    expected = {"name": "&lt;b&gt;w&lt;/b&gt;", "current_job": {"call_string": HIDDEN_CALL, "n": 3}}
    assert scrub(data) == {"workers": [expected]}


async def test_standalone_app_redirects_and_guards() -> None:
    app = standalone(Settings(redis_url="redis://127.0.0.1:1/0", dashboard_keys=[SecretStr("dash")]))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        root = await client.get("/")
        assert root.status_code == 307 and root.headers["location"] == "/dashboard/"
        assert (await client.get("/health/live")).json() == {"status": "ok"}
        assert (await client.get("/dashboard/static/favicon.ico")).status_code == 401
        asset = await client.get("/dashboard/static/favicon.ico", headers={"Authorization": basic("dash")})
        assert asset.status_code == 200 and asset.content
