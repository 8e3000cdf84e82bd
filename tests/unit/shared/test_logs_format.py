"""Log formats: JSON lines and key=value, both carrying the request id of the request being served."""

import io
import logging

import orjson

from shared.logs import REQUEST_ID, JsonFormatter, KeyValueFormatter, RequestIdFilter


def _logger(formatter: logging.Formatter) -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger(f"test.logs.{id(out)}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, out


def test_json_lines_hold_the_fields_and_the_current_request_id() -> None:
    logger, out = _logger(JsonFormatter())
    token = REQUEST_ID.set("req_abc")
    try:
        logger.info("request", extra={"route": "/v1/chat/completions", "status": 200, "ms": 1.5})
    finally:
        REQUEST_ID.reset(token)
    logger.info("outside")
    first, second = (orjson.loads(line) for line in out.getvalue().splitlines())
    assert first["msg"] == "request" and first["request_id"] == "req_abc"
    assert first["route"] == "/v1/chat/completions" and first["status"] == 200 and first["ms"] == 1.5
    assert first["level"] == "info" and isinstance(first["ts"], float)
    assert "request_id" not in second


def test_key_value_lines_keep_an_explicit_request_id() -> None:
    logger, out = _logger(KeyValueFormatter())
    token = REQUEST_ID.set("req_ctx")
    try:
        logger.info("job finished", extra={"job_id": "job_1", "request_id": "req_explicit"})
    finally:
        REQUEST_ID.reset(token)
    line = out.getvalue().strip()
    assert "job finished" in line and "job_id=job_1" in line and "request_id=req_explicit" in line
    assert "req_ctx" not in line
