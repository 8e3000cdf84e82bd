"""The real API over fakeredis, with a registered worker, and a stand-in worker that drives jobs.

The stand-in takes jobs off a lane and writes their events through the same CLAIM and EMIT scripts
the real worker uses, so job views, batch bookkeeping and event streams are exercised end to end
without a model.
"""

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import fakeredis
import orjson
from fastapi.testclient import TestClient

from api.app import create_app
from shared import events, names, objects
from shared.emission import emission
from shared.jobs import Status, response_id
from shared.settings import DEFAULT_MODEL_NAME, Settings
from worker.sink import Scripts

MODEL = DEFAULT_MODEL_NAME
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


@dataclass
class StandInWorker:
    redis: fakeredis.FakeRedis
    settings: Settings
    name: str = "stand-in"
    attempts: dict[str, int] = field(default_factory=dict)

    @property
    def scripts(self) -> Scripts:
        return Scripts(self.redis)

    def pop(self, lane: str = names.BATCH) -> str | None:
        raw = self.redis.lpop(names.rq_queue_key(MODEL, lane))
        return raw.decode() if raw else None

    def take(self, lane: str = names.BATCH, timeout: float = 10.0) -> str:
        """The next job of the lane, waiting for the batch runner to enqueue one."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job_id = self.pop(lane)
            if job_id:
                return job_id
            time.sleep(0.01)
        raise AssertionError(f"nothing was enqueued on the {lane} lane")

    def start(self, job_id: str) -> bool:
        """Claim and announce the job, as the worker does before its first token; False when refused."""
        keys = [names.job_key(job_id), names.heartbeat_key(job_id)]
        attempt = int(self.scripts.claim(keys=keys, args=[self.name, time.time(), self.settings.heartbeat_ttl]))
        if attempt < 0:
            return False
        self.attempts[job_id] = attempt
        self.emit(job_id, events.started(self.name, 3, attempt), events.STARTED)
        return True

    def emit(self, job_id: str, event: bytes, kind: str, terminal: str = "") -> int:
        """EMIT's answer: -1 refused, 0 appended, 1 appended and cancellation requested."""
        attempt = self.attempts.get(job_id, "")
        keys, args = emission(self.settings, job_id, event, kind, attempt=attempt, terminal=terminal)
        return int(self.scripts.emit(keys=keys, args=args))

    def tokens(self, job_id: str, pieces: list[str]) -> list[int]:
        return [self.emit(job_id, events.token(piece), events.TOKEN) for piece in pieces]

    def finish(self, job_id: str, text: str = "ok") -> dict[str, Any]:
        kind = (self.redis.hget(names.job_key(job_id), "kind") or b"chat").decode()
        build = objects.chat_completion if kind == "chat" else objects.text_completion
        response = build(response_id(job_id, kind), MODEL, int(time.time()), text, "stop", objects.usage(3, 1))
        self.emit(job_id, events.done(response), events.DONE, Status.COMPLETED)
        return response

    def fail(self, job_id: str, status: int = 400, code: str = "context_length_exceeded") -> None:
        event = events.error(status, "invalid_request_error", code, "The prompt is too long.", "messages")
        self.emit(job_id, event, events.ERROR, Status.FAILED)

    def run(self, job_id: str, text: str = "ok") -> dict[str, Any]:
        assert self.start(job_id)
        self.tokens(job_id, [text])
        return self.finish(job_id, text)


@dataclass
class JobsApp:
    http: TestClient
    redis: fakeredis.FakeRedis
    settings: Settings
    worker: StandInWorker

    def submit(self, body: dict[str, Any] | None = None, **headers: str) -> dict[str, Any]:
        request = {"endpoint": "/v1/chat/completions", "body": body or CHAT}
        response = self.http.post("/v1/jobs", json=request, headers=headers)
        assert response.status_code == 202, response.text
        return response.json()

    def upload(self, lines: list[Any], **headers: str) -> dict[str, Any]:
        content = b"".join((line if isinstance(line, bytes) else orjson.dumps(line)) + b"\n" for line in lines)
        files = {"file": ("input.jsonl", content, "application/jsonl")}
        response = self.http.post("/v1/files", files=files, data={"purpose": "batch"}, headers=headers)
        assert response.status_code == 200, response.text
        return response.json()

    def create_batch(self, file_id: str, window: str = "24h", **headers: str) -> dict[str, Any]:
        body = {"input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": window}
        response = self.http.post("/v1/batches", json=body, headers=headers)
        assert response.status_code == 200, response.text
        return response.json()

    def batch(self, batch_id: str, **headers: str) -> dict[str, Any]:
        response = self.http.get(f"/v1/batches/{batch_id}", headers=headers)
        assert response.status_code == 200, response.text
        return response.json()

    def wait_batch(
        self, batch_id: str, done: Callable[[dict[str, Any]], bool], timeout: float = 10.0, **headers: str
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = self.batch(batch_id, **headers)
            if done(batch):
                return batch
            time.sleep(0.02)
        raise AssertionError(f"batch {batch_id} never reached the expected state: {batch}")


def line(custom_id: str, body: dict[str, Any] | None = None, url: str = "/v1/chat/completions") -> dict[str, Any]:
    return {"custom_id": custom_id, "method": "POST", "url": url, "body": body or CHAT}


def register_worker(redis: fakeredis.FakeRedis) -> None:
    """A live worker for the model, with the context facts the API's early size check reads."""
    redis.hset(names.models_key(), MODEL, int(time.time()))
    redis.zadd(names.model_workers_key(MODEL), {"stand-in": time.time() + 3600})
    redis.hset(names.model_info_key(MODEL), mapping={"n_ctx": 2048, "max_token_bytes": 16})


@contextlib.contextmanager
def jobs_app(**overrides: Any) -> Iterator[JobsApp]:
    server = fakeredis.FakeServer()
    redis = fakeredis.FakeRedis(server=server)
    register_worker(redis)
    settings = Settings(redis_url="redis://unused", **overrides)
    app = create_app(settings, redis=fakeredis.FakeAsyncRedis(server=server))
    with TestClient(app) as http:
        yield JobsApp(http, redis, settings, StandInWorker(redis, settings))
