"""Validate objects against the official OpenAI OpenAPI spec (`../shared/openai-openapi.json`, or a copy here).

The spec declares OpenAPI 3.1 but marks nullable fields with 3.0's `nullable: true`, which JSON Schema
validators ignore; those are rewritten as `anyOf [..., {"type": "null"}]` before validating. Real streams
send `finish_reason: null` on every chunk but the last; the stream schema is relaxed for that only, and
`CreateCompletionStreamResponse` is the same relaxation of the legacy completion object.
"""

import copy
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

HERE = Path(__file__).resolve().parent
CANDIDATES = [HERE / "openai-openapi.json", HERE.parent.parent / "shared" / "openai-openapi.json"]

# The spec has no schema for batch output lines; this is their documented shape.
BATCH_OUTPUT_LINE: dict[str, Any] = {
    "type": "object",
    "required": ["id", "custom_id", "response", "error"],
    "properties": {
        "id": {"type": "string"},
        "custom_id": {"type": "string"},
        "response": {
            "anyOf": [
                {"type": "null"},
                {
                    "type": "object",
                    "required": ["status_code", "request_id", "body"],
                    "properties": {
                        "status_code": {"type": "integer"},
                        "request_id": {"type": "string"},
                        "body": {"type": "object"},
                    },
                },
            ]
        },
        "error": {
            "anyOf": [
                {"type": "null"},
                {"type": "object", "properties": {"code": {"type": "string"}, "message": {"type": "string"}}},
            ]
        },
    },
}


def _denullable(node: Any) -> Any:
    if isinstance(node, dict):
        node = {key: _denullable(value) for key, value in node.items()}
        if node.pop("nullable", False):
            return {"anyOf": [node, {"type": "null"}]}
        return node
    if isinstance(node, list):
        return [_denullable(item) for item in node]
    return node


def _completion_stream(spec: dict[str, Any]) -> dict[str, Any]:
    """`CreateCompletionResponse` as streamed: `finish_reason` and `usage` are null before the last chunk."""
    schema = copy.deepcopy(spec["components"]["schemas"]["CreateCompletionResponse"])
    choice = schema["properties"]["choices"]["items"]["properties"]
    choice["finish_reason"] = {"anyOf": [choice["finish_reason"], {"type": "null"}]}
    schema["properties"]["usage"] = {"anyOf": [schema["properties"]["usage"], {"type": "null"}]}
    return schema


@lru_cache
def _spec() -> dict[str, Any]:
    for path in CANDIDATES:
        if path.exists():
            spec = _denullable(orjson.loads(path.read_bytes()))
            choice = spec["components"]["schemas"]["CreateChatCompletionStreamResponse"]["properties"]["choices"]
            finish = choice["items"]["properties"]["finish_reason"]
            choice["items"]["properties"]["finish_reason"] = {"anyOf": [copy.deepcopy(finish), {"type": "null"}]}
            spec["components"]["schemas"]["BatchRequestOutput"] = BATCH_OUTPUT_LINE
            spec["components"]["schemas"]["CreateCompletionStreamResponse"] = _completion_stream(spec)
            return spec
    raise FileNotFoundError("openai-openapi.json not found in " + ", ".join(map(str, CANDIDATES)))


@lru_cache
def _validator(name: str) -> Draft202012Validator:
    spec = _spec()
    registry: Registry = Registry().with_resource("urn:openai", Resource(contents=spec, specification=DRAFT202012))
    schema = {"$ref": f"urn:openai#/components/schemas/{name}"}
    return Draft202012Validator(schema, registry=registry)


def errors_against(name: str, instance: Any) -> list[str]:
    """Every way `instance` breaks the spec's schema `name` (empty when it conforms)."""
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in _validator(name).iter_errors(instance)]


def assert_conforms(name: str, instance: Any) -> None:
    problems = errors_against(name, instance)
    assert not problems, f"{name}: " + "; ".join(problems[:5])
