"""The real API over fakeredis behind a synchronous test client, with a registered model and a stand-in worker."""

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import fakeredis
import orjson
from fastapi.testclient import TestClient

from api.app import create_app
from shared.settings import DEFAULT_MODEL_NAME, Settings
from tests.fakes import register_worker
from tests.standin import StandInWorker

MODEL = DEFAULT_MODEL_NAME
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
# n_ctx and max_token_bytes the registered model announces.
CONTEXT = (2048, 16)


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


@contextlib.contextmanager
def jobs_app(**overrides: Any) -> Iterator[JobsApp]:
    server = fakeredis.FakeServer()
    redis = fakeredis.FakeRedis(server=server)
    register_worker(redis, MODEL, context=CONTEXT)
    settings = Settings(redis_url="redis://unused", **overrides)
    app = create_app(settings, redis=fakeredis.FakeAsyncRedis(server=server))
    with TestClient(app) as http:
        yield JobsApp(http, redis, settings, StandInWorker(redis, settings, MODEL))
