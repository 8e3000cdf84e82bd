"""Logs of a real stack: one line per request and per job, with ids, timings and counts, never user text."""

import re
import secrets
from pathlib import Path

import httpx
import openai
import pytest

from tests.probes import wait_for
from tests.stack import MODEL, Stack

pytestmark = pytest.mark.integration


def wait_for_line(path: Path, pattern: str, timeout: float = 10.0) -> str:
    def matching() -> str | None:
        return next((line for line in path.read_text(errors="replace").splitlines() if re.search(pattern, line)), None)

    return wait_for(matching, f"a line matching {pattern!r} in {path}", timeout, interval=0.1)


def test_request_and_job_lines_carry_ids_and_figures_but_no_text(stack: Stack, client: openai.OpenAI) -> None:
    assert stack.logs is not None
    marker = f"zebra{secrets.token_hex(6)}"
    request_id = f"trace-{secrets.token_hex(4)}"
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[{"role": "user", "content": f"Repeat this word: {marker}"}],
        max_tokens=16,
        seed=3,
        extra_headers={"X-Request-ID": request_id},
    )
    assert raw.headers["x-request-id"] == request_id
    reply = raw.parse()
    job_id = "job_" + reply.id.removeprefix("chatcmpl-")
    completion = reply.choices[0].message.content or ""

    request_line = wait_for_line(stack.logs / "api.log", rf"request_id={request_id}\b")
    assert f"job_id={job_id}" in request_line and "route=/v1/chat/completions" in request_line
    assert "status=200" in request_line and re.search(r"\bms=[0-9.]+", request_line)
    job_line = wait_for_line(stack.logs / "worker0.log", rf"job finished .*job_id={job_id}\b")
    assert f"completion_tokens={reply.usage.completion_tokens}" in job_line  # type: ignore[union-attr]
    assert f"prompt_tokens={reply.usage.prompt_tokens}" in job_line  # type: ignore[union-attr]
    assert re.search(r"time_to_first_token_seconds=[0-9.]+", job_line)
    assert f"model={MODEL}" in job_line and f"request_id={request_id}" in job_line

    logs = "\n".join(path.read_text(errors="replace") for path in stack.logs.glob("*.log"))
    assert marker not in logs
    if len(completion.strip()) >= 12:
        assert completion.strip() not in logs


def test_request_id_is_generated_when_absent_or_unacceptable(stack: Stack) -> None:
    plain = httpx.get(f"{stack.base_url}/health/live", timeout=5)
    assert re.fullmatch(r"req_[0-9a-f]{24}", plain.headers["x-request-id"])
    odd = httpx.get(f"{stack.base_url}/health/live", headers={"X-Request-ID": "has spaces <b>"}, timeout=5)
    assert re.fullmatch(r"req_[0-9a-f]{24}", odd.headers["x-request-id"])
    assert odd.headers["x-request-id"] != plain.headers["x-request-id"]


def test_errors_carry_the_request_id_too(stack: Stack) -> None:
    reply = httpx.post(f"{stack.base_url}/v1/chat/completions", json={"model": 1}, timeout=5)
    assert reply.status_code == 400
    assert reply.headers["x-request-id"].startswith("req_")


def test_background_job_lines_name_the_submitting_request(stack: Stack) -> None:
    assert stack.logs is not None
    request_id = f"bg-{secrets.token_hex(4)}"
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Say yes"}], "max_tokens": 2}
    submitted = httpx.post(
        f"{stack.base_url}/v1/jobs",
        json={"endpoint": "/v1/chat/completions", "body": body},
        headers={"X-Request-ID": request_id},
        timeout=10,
    )
    assert submitted.status_code == 202
    job_id = submitted.json()["id"]

    request_line = wait_for_line(stack.logs / "api.log", rf"request_id={request_id}\b")
    assert f"job_id={job_id}" in request_line and "status=202" in request_line
    job_line = wait_for_line(stack.logs / "worker0.log", rf"job finished .*job_id={job_id}\b", timeout=30)
    assert f"request_id={request_id}" in job_line


def test_worker_logs_the_engine_it_runs_at_start(stack: Stack) -> None:
    assert stack.logs is not None
    line = wait_for_line(stack.logs / "worker0.log", r"llama\.cpp engine ")
    assert re.search(r"llama_cpp_python=\d+\.\d+\.\d+", line)
    assert re.search(r"build=(native|portable) [0-9a-f]{20}", line), line
    assert re.search(r"system_info=CPU : .*SSE3 = 1", line), line
