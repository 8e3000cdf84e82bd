"""The app's OpenAPI document states what the API really answers: OpenAI error objects, never FastAPI's 422."""

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                "code": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            },
        }
    },
}

_ALWAYS = {"400": "Invalid request", "401": "Missing or wrong API key", "503": "Redis unreachable or no live worker"}
_POST = {"413": "Request body too large", "429": "Queue full: retry after `Retry-After` seconds"}
_NAMED = {"404": "No such model, job, file or batch"}


def _error_responses(path: str, method: str) -> dict[str, Any]:
    statuses = dict(_ALWAYS) | (_POST if method == "post" else {}) | (_NAMED if "{" in path or method == "post" else {})
    ref = {"$ref": "#/components/schemas/ErrorResponse"}
    return {
        code: {"description": text, "content": {"application/json": {"schema": ref}}}
        for code, text in sorted(statuses.items())
    }


def documented_openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """A replacement for `app.openapi`: FastAPI's document with the error answers made truthful."""

    def build() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        components["ErrorResponse"] = ERROR_SCHEMA
        for path, operations in schema.get("paths", {}).items():
            if not path.startswith("/v1/"):
                continue
            for method, operation in operations.items():
                responses = operation.setdefault("responses", {})
                responses.pop("422", None)
                responses.update(_error_responses(path, method))
        app.openapi_schema = schema
        return schema

    return build
