"""Property-based fuzzing of the app from its own OpenAPI document: no input earns a 5xx.

Bodies come from the documented request schemas (valid ones, and valid ones with one field replaced by
arbitrary JSON), plus arbitrary JSON and raw bytes; path parameters are arbitrary text. Every answer
is either a success or the documented OpenAI error object. The step worker ends admitted jobs.
"""

import asyncio
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from tests.fakes import MODEL
from tests.harness import AsyncApp, async_app, drain
from tests.spec import assert_conforms

JSON_POSTS = ["/v1/chat/completions", "/v1/completions", "/v1/jobs", "/v1/batches"]
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck), database=None)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)


def from_schema(schema: dict[str, Any], components: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values valid against the subset of JSON Schema that FastAPI writes for pydantic models."""
    if "$ref" in schema:
        return st.deferred(lambda: from_schema(components[schema["$ref"].rsplit("/", 1)[1]], components))
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return st.one_of(*[from_schema(option, components) for option in schema[key]])
    if "enum" in schema or "const" in schema:
        return st.sampled_from(schema.get("enum") or [schema["const"]])
    kind = schema.get("type")
    if kind == "object":
        return _objects(schema, components)
    if kind == "array":
        items = from_schema(schema.get("items", {}), components)
        return st.lists(items, min_size=schema.get("minItems", 0), max_size=min(schema.get("maxItems", 3), 3))
    if kind == "string" and "pattern" in schema:
        return st.from_regex(schema["pattern"], fullmatch=True)
    scalars: dict[str, st.SearchStrategy[Any]] = {
        "string": st.text(min_size=schema.get("minLength", 0), max_size=min(schema.get("maxLength", 30), 30)),
        "integer": st.integers(schema.get("minimum"), schema.get("maximum")),
        "number": st.floats(schema.get("minimum"), schema.get("maximum"), allow_nan=False, allow_infinity=False),
        "boolean": st.booleans(),
        "null": st.none(),
    }
    return scalars.get(kind, json_values)  # type: ignore[arg-type]


def _objects(schema: dict[str, Any], components: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    properties = schema.get("properties", {})
    if not properties:
        extra = schema.get("additionalProperties", True)
        values = from_schema(extra, components) if isinstance(extra, dict) else json_values
        return st.dictionaries(st.text(max_size=10), values, max_size=min(schema.get("maxProperties", 3), 3))
    required = set(schema.get("required", ()))
    return st.fixed_dictionaries(
        {name: from_schema(sub, components) for name, sub in properties.items() if name in required},
        optional={name: from_schema(sub, components) for name, sub in properties.items() if name not in required},
    )


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[asyncio.Runner, AsyncApp]]:
    """One app on fakeredis for all examples, with a served model and the step worker."""
    with asyncio.Runner() as runner:
        app_context = async_app(max_queue_depth=1000, sync_timeout=5, max_tokens_cap=64)
        fake = runner.run(app_context.__aenter__())
        fake.serve()
        worker = drain(fake)
        runner.run(worker.__aenter__())
        try:
            yield runner, fake
        finally:
            runner.run(worker.__aexit__(None, None, None))
            runner.run(app_context.__aexit__(None, None, None))


def _spec(fake: AsyncApp) -> dict[str, Any]:
    return fake.app.openapi()


def _body_schema(spec: dict[str, Any], path: str) -> dict[str, Any]:
    return spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]


def _check(spec: dict[str, Any], reply: httpx.Response, path: str) -> None:
    assert reply.status_code < 500, f"{path}: {reply.status_code} {reply.text[:300]}"
    if reply.status_code >= 400:
        schema = {"$ref": "#/components/schemas/ErrorResponse", "components": spec["components"]}
        Draft202012Validator(schema).validate(reply.json())
        documented = spec["paths"][path]["post"]["responses"]
        assert str(reply.status_code) in documented, f"{path}: undocumented {reply.status_code}"
    elif path == "/v1/chat/completions" and reply.headers["content-type"].startswith("application/json"):
        assert_conforms("CreateChatCompletionResponse", reply.json())
    elif reply.headers["content-type"].startswith("text/event-stream"):
        assert reply.text.endswith("data: [DONE]\n\n") or '"error"' in reply.text


def _post(served: tuple[asyncio.Runner, AsyncApp], path: str, content: bytes) -> None:
    runner, fake = served
    headers = {"Content-Type": "application/json"}
    reply = runner.run(fake.http.post(path, content=content, headers=headers))
    _check(_spec(fake), reply, path)


def _with_model(body: Any, use_served: bool) -> Any:
    """Most generated model names are unknown (404); often use the served one to reach admission."""
    if use_served and isinstance(body, dict) and "model" in body:
        return {**body, "model": MODEL}
    if use_served and isinstance(body, dict) and isinstance(body.get("body"), dict):
        return {**body, "body": {**body["body"], "model": MODEL}}
    return body


@st.composite
def documented_bodies(draw: st.DrawFn, spec: dict[str, Any], path: str) -> Any:
    components = spec["components"]["schemas"]
    body = draw(from_schema(_body_schema(spec, path), components))
    if path == "/v1/jobs" and draw(st.booleans()):
        # The job's inner body is free-form in the document; draw it from its endpoint's own schema.
        body["body"] = draw(from_schema(_body_schema(spec, body["endpoint"]), components))
    if draw(st.booleans()) and isinstance(body, dict) and body:
        key = draw(st.sampled_from(sorted(body)))
        body = {**body, key: draw(json_values)}
    return _with_model(body, draw(st.booleans()))


def test_the_document_describes_every_json_body_and_error(served: tuple[asyncio.Runner, AsyncApp]) -> None:
    spec = _spec(served[1])
    for path in JSON_POSTS:
        operation = spec["paths"][path]["post"]
        assert "$ref" in operation["requestBody"]["content"]["application/json"]["schema"]
        assert {"400", "401", "413", "503"} <= set(operation["responses"]) and "422" not in operation["responses"]
    assert "HTTPValidationError" not in spec["components"]["schemas"]


@pytest.mark.parametrize("path", JSON_POSTS)
def test_documented_bodies_never_earn_a_5xx(served: tuple[asyncio.Runner, AsyncApp], path: str) -> None:
    @FUZZ
    @given(body=documented_bodies(_spec(served[1]), path))
    def run(body: Any) -> None:
        _post(served, path, json.dumps(body).encode())

    run()


@pytest.mark.parametrize("path", JSON_POSTS)
def test_arbitrary_json_and_bytes_never_earn_a_5xx(served: tuple[asyncio.Runner, AsyncApp], path: str) -> None:
    @FUZZ
    @given(content=json_values.map(lambda value: json.dumps(value).encode()) | st.binary(max_size=200))
    def run(content: bytes) -> None:
        _post(served, path, content)

    run()


@pytest.mark.parametrize(
    "template",
    ["/v1/models/{}", "/v1/jobs/{}", "/v1/jobs/{}/cancel", "/v1/files/{}", "/v1/files/{}/content", "/v1/batches/{}"],
)
def test_arbitrary_path_parameters_never_earn_a_5xx(served: tuple[asyncio.Runner, AsyncApp], template: str) -> None:
    runner, fake = served
    method = "POST" if template.endswith("cancel") else "GET"

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(value=st.text(min_size=1, max_size=80))
    def run(value: str) -> None:
        path = template.format(quote(value, safe=""))
        reply = runner.run(fake.http.request(method, path))
        assert reply.status_code < 500, f"{path}: {reply.status_code} {reply.text[:300]}"

    run()
