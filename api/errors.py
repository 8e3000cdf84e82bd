"""Every error leaves the API as an OpenAI error object; internals go to the log only."""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException

from api.jsonresponse import OrjsonResponse
from api.middleware.request_log import annotate
from shared.defaults import UNSUPPORTED
from shared.errors import InvalidRequest, LlamaqError, Unavailable

logger = logging.getLogger(__name__)


def error_response(exc: LlamaqError) -> OrjsonResponse:
    return OrjsonResponse(exc.to_dict(), status_code=exc.status, headers=exc.headers())


def _param(loc: tuple[Any, ...], root: Any, kind: str) -> str | None:
    """`messages[0].content` from a pydantic location, walking the input so union tags are skipped."""
    text, data = "", root
    for position, part in enumerate(loc):
        last = position == len(loc) - 1
        if isinstance(part, int) and isinstance(data, list) and 0 <= part < len(data):
            text, data = text + f"[{part}]", data[part]
        elif isinstance(part, str) and isinstance(data, dict) and (part in data or (last and kind == "missing")):
            text, data = text + ("." if text else "") + part, data.get(part)
    return text or None


def from_validation(exc: RequestValidationError) -> InvalidRequest:
    errors = [
        {**e, "loc": tuple(e.get("loc", ()))[1:]} if e.get("loc", ())[:1] == ("body",) else e for e in exc.errors()
    ]
    where = tuple(errors[0].get("loc", ())) if errors else ()
    if where[:1] in (("query",), ("header",), ("path",)) and len(where) > 1:
        # Not in the body: name the parameter itself (`limit`), there is no JSON to walk.
        return from_errors([{**errors[0], "loc": where[1:]}], {str(where[1]): None})
    return from_errors(errors, exc.body)


def _culprit(errors: list[Any], root: Any) -> Any:
    """The first error, or the one reaching deepest into the input at or under its location.

    A union (string or text parts) reports every branch; the first one ("should be a valid string")
    hides the real problem inside the part the caller actually sent.
    """
    first = errors[0]
    base = _param(tuple(first.get("loc", ())), root, first.get("type", ""))
    if base is None:
        return first

    def depth(error: Any) -> int:
        param = _param(tuple(error.get("loc", ())), root, error.get("type", "")) or ""
        if param != base and not param.startswith((base + ".", base + "[")):
            return -1
        return param.count(".") + param.count("[")

    return max(errors, key=depth)


def from_errors(errors: list[Any], root: Any, prefix: str = "") -> InvalidRequest:
    """The culprit among pydantic's errors as an OpenAI error; `prefix` names where `root` sits in the request."""
    if not errors:
        return InvalidRequest("The request body is invalid.")
    first = _culprit(errors, root)
    kind = first.get("type", "")
    param = _param(tuple(first.get("loc", ())), root, kind)
    if prefix:
        param = f"{prefix}.{param}" if param else prefix
    if kind == "json_invalid":
        return InvalidRequest("We could not parse the JSON body of your request. Send valid JSON.")
    if kind == "missing" and param is None:
        return InvalidRequest("The request body is missing; send a JSON object.")
    if kind == "missing":
        return InvalidRequest(f"Missing required parameter: '{param}'.", param=param)
    if kind == "extra_forbidden":
        name = str(first["loc"][-1])
        param = f"{param}.{name}" if param and not param.endswith(name) else param or name
        return InvalidRequest(f"Unrecognized request argument supplied: {name}", param=param)
    if kind == UNSUPPORTED:
        name = str(first.get("ctx", {}).get("field", ""))
        if name and not (param or "").endswith(name):
            param = f"{param}.{name}" if param else name
        return InvalidRequest(f"{first['msg']}.", param=param)
    if kind in ("model_type", "dict_type", "model_attributes_type") and param in (None, prefix or None):
        return InvalidRequest("The request body must be a JSON object.", param=param)
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    return InvalidRequest(f"Invalid value for '{param}': {message}.", param=param)


def install(app: FastAPI) -> None:
    @app.exception_handler(LlamaqError)
    async def _llamaq(request: Request, exc: LlamaqError) -> OrjsonResponse:
        if exc.model:
            annotate(request, refused_model=exc.model)  # the `model` label of llamaq_rejected_requests
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> OrjsonResponse:
        return error_response(from_validation(exc))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> OrjsonResponse:
        error = LlamaqError(str(exc.detail))
        error.status, error.type = exc.status_code, "invalid_request_error"
        error.code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return error_response(error)

    @app.exception_handler(RedisError)
    async def _redis(request: Request, exc: RedisError) -> OrjsonResponse:
        logger.warning("redis unavailable: %s", type(exc).__name__)
        return error_response(Unavailable("The queue (Redis) is unavailable; retry shortly."))

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> OrjsonResponse:
        logger.exception("unhandled error")
        return error_response(LlamaqError("The server had an error while processing your request."))
