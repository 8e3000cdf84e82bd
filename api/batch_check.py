"""Validation of a batch's input file: every line checked before any is enqueued, as OpenAI does.

A line is refused for bad JSON, a missing body, a bad or repeated `custom_id`, the wrong url or
method, a body the endpoint would refuse, an unknown model, or a prompt that cannot fit the model's
context. At most `MAX_REPORTED_ERRORS` problems are reported, each with its line number.
"""

from collections.abc import AsyncIterator
from typing import Any

import orjson
from redis.asyncio import Redis

from api.admission import Admission, check_fits, check_serves
from api.files import CHUNK_LINES
from api.payloads import payload_for
from shared import names
from shared.errors import LlamaqError
from shared.modelinfo import ModelInfo
from shared.payload import JobPayload
from shared.settings import Settings

MAX_REPORTED_ERRORS = 100


async def file_lines(redis: Redis, file_id: str, start: int = 0) -> AsyncIterator[tuple[int, bytes]]:
    """The uploaded file's lines from `start`, with their index, read a chunk at a time."""
    key = names.file_lines_key(file_id)
    while chunk := await redis.lrange(key, start, start + CHUNK_LINES - 1):
        for offset, line in enumerate(chunk):
            yield start + offset, line
        start += len(chunk)


async def problems(
    redis: Redis, settings: Settings, admission: Admission, record: dict[str, str]
) -> tuple[int, list[dict[str, Any]]]:
    """The file's line count and what is wrong with it, as OpenAI batch errors (empty when it may run)."""
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    known = {m.decode() for m in await redis.hkeys(names.models_key())}
    sizes: dict[str, ModelInfo] = {}
    total = 0
    async for index, line in file_lines(redis, record["input_file_id"]):
        total += 1
        checked = check_line(line, record["endpoint"], seen, known, settings)
        problem = checked if isinstance(checked, dict) else None
        if isinstance(checked, JobPayload):
            if checked.model not in sizes:
                sizes[checked.model] = await admission.size_info(checked.model)
            problem = _fits(checked, sizes[checked.model])
        if problem and len(errors) < MAX_REPORTED_ERRORS:
            errors.append({**problem, "line": index + 1})
    if total == 0:
        errors.append({"code": "empty_file", "message": "The input file has no requests.", "param": None})
    elif total > settings.max_batch_lines:
        message = f"The input file has {total} requests; the limit is {settings.max_batch_lines}."
        errors.insert(0, {"code": "too_many_requests", "message": message, "param": None})
    return total, errors


def _fits(payload: JobPayload, size_info: ModelInfo) -> dict[str, Any] | None:
    """A prompt that cannot fit fails here, not at enqueue time where the line would have no job."""
    try:
        check_serves(payload, size_info)
        check_fits(payload, size_info)
    except LlamaqError as exc:
        return {"code": exc.code or "invalid_request", "message": exc.message, "param": f"body.{exc.param}"}
    return None


def check_line(
    line: bytes, endpoint: str, seen: set[str], known: set[str], settings: Settings
) -> dict[str, Any] | JobPayload:
    """What is wrong with one input line, as an OpenAI batch error, or the line's job payload."""
    try:
        request = orjson.loads(line)
    except orjson.JSONDecodeError:
        return {"code": "invalid_json_line", "message": "This line is not valid JSON.", "param": None}
    if not isinstance(request, dict) or not isinstance(request.get("body"), dict):
        return {
            "code": "invalid_request",
            "message": "Each line needs an object with a 'body' object.",
            "param": "body",
        }
    custom_id = request.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id or len(custom_id) > 512:
        return {"code": "invalid_custom_id", "message": "custom_id must be a non-empty string.", "param": "custom_id"}
    if custom_id in seen:
        return {"code": "duplicate_custom_id", "message": f"Duplicate custom_id '{custom_id}'.", "param": "custom_id"}
    seen.add(custom_id)
    if request.get("method", "POST") != "POST" or request.get("url") != endpoint:
        return {"code": "mismatched_url", "message": f"url must be '{endpoint}' with method POST.", "param": "url"}
    try:
        payload = payload_for(endpoint, request["body"], settings, names.BATCH, "body")
    except LlamaqError as exc:
        return {"code": exc.code or "invalid_request", "message": exc.message, "param": exc.param}
    if payload.model not in known:
        return {
            "code": "model_not_found",
            "message": f"The model '{payload.model}' does not exist.",
            "param": "body.model",
        }
    return payload
