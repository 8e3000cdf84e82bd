"""SIGTERM: a worker finishes the job it is generating before it exits; the API ends open streams
with a terminal error event rather than cutting them."""

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from redis import Redis

from shared import names
from shared.redis_server import RedisServer
from tests.probes import poll
from tests.stack import MODEL, Stack, running_stack

pytestmark = pytest.mark.integration

STORY = [{"role": "user", "content": "Write a long story about a dragon who learns to bake bread."}]


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    directory = tmp_path_factory.mktemp("shutdown")
    server = RedisServer(directory / "redis", persist=False)
    try:
        with running_stack(server.start(), directory / "logs") as stack:
            yield stack
    finally:
        server.stop()


def client_of(stack: Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key="unused", max_retries=0, timeout=60)


def exit_code(process: subprocess.Popen[bytes], timeout: float = 60.0) -> int:
    return process.wait(timeout)


def job_status(stack: Stack, job_id: str, wanted: str, timeout: float = 30.0) -> str:
    with Redis.from_url(stack.redis_url) as redis:

        def status() -> str:
            return (redis.hget(names.job_key(job_id), "status") or b"").decode()

        poll(lambda: status() == wanted, timeout)
        return status()


def test_sigterm_lets_the_worker_finish_its_job(own_stack: Stack) -> None:
    worker = own_stack.workers[0]
    stream = client_of(own_stack).chat.completions.create(
        model=MODEL, messages=STORY, max_tokens=120, temperature=0, stream=True
    )
    chunks, signalled_at = [], -1
    for chunk in stream:
        chunks.append(chunk)
        if len(chunks) == 4:
            worker.send_signal(signal.SIGTERM)
            signalled_at = len(chunks)
    assert signalled_at == 4
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish in (["stop"], ["length"])
    text_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(text_chunks) > signalled_at  # tokens kept coming after the signal
    assert exit_code(worker) == 0
    job_id = "job_" + chunks[0].id.removeprefix("chatcmpl-")
    assert job_status(own_stack, job_id, "completed") == "completed"
    with Redis.from_url(own_stack.redis_url) as redis:
        # It left the registry on its way out rather than waiting for its registration to expire.
        assert redis.zcard(names.model_workers_key(MODEL)) == 0


def test_sigterm_ends_open_api_streams_with_a_terminal_event(own_stack: Stack) -> None:
    own_stack.add_worker()
    own_stack.wait_workers(1)
    assert own_stack.api is not None
    stream = client_of(own_stack).chat.completions.create(
        model=MODEL, messages=STORY, max_tokens=1000, temperature=0, stream=True
    )
    chunks = []
    with pytest.raises(openai.APIError) as ended:
        for chunk in stream:
            chunks.append(chunk)
            if len(chunks) == 4:
                own_stack.api.send_signal(signal.SIGTERM)
    assert len(chunks) >= 4
    assert ended.value.code == "server_shutting_down"
    # uvicorn re-raises the signal once its shutdown is complete, so the process ends "by" SIGTERM.
    assert exit_code(own_stack.api) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in (Path(own_stack.logs or ".") / "api.log").read_text()
    job_id = "job_" + chunks[0].id.removeprefix("chatcmpl-")
    # The stream's job is cancelled as when a client leaves, so the worker is free again.
    assert job_status(own_stack, job_id, "cancelled") == "cancelled"
