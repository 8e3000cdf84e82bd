"""A private llamaq: redis-server, `llamaq api` and `llamaq worker` processes on free ports."""

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen

import httpx
from redis import Redis

from bench.procs import free_port, spawn, stop, wait_until
from shared.redis_server import RedisServer


@dataclass
class Llamaq:
    base_url: str
    model: str
    redis: Redis
    api: Popen[bytes]
    workers: list[Popen[bytes]] = field(default_factory=list)

    def ready_workers(self) -> int:
        body = httpx.get(f"{self.base_url}/health/ready", timeout=2).json()
        return int(body.get("models", {}).get(self.model, {}).get("workers", 0))


@contextlib.contextmanager
def private_redis(directory: Path, cpus: str | None = None) -> Iterator[RedisServer]:
    """An empty, non-persistent redis-server on a unix socket; `cpus` pins it to those cores."""
    server = RedisServer(directory, persist=False)
    server.start()
    if cpus and server.process:
        os.sched_setaffinity(server.process.pid, {int(cpu) for cpu in cpus.split(",")})
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def running_llamaq(
    redis_url: str, logs: Path, model: str, workers: int, api_cpus: str | None = None, **settings: str
) -> Iterator[Llamaq]:
    """The API (optionally pinned) and `workers` workers; waits until they all serve `model`."""
    port = free_port()
    env = {**os.environ, "LLAMAQ_REDIS_URL": redis_url, "LLAMAQ_HOST": "127.0.0.1", "LLAMAQ_PORT": str(port)}
    env |= {"LLAMAQ_MODEL_NAME": model, "LLAMAQ_LOG_LEVEL": "WARNING"}
    env |= {f"LLAMAQ_{key.upper()}": value for key, value in settings.items()}
    logs.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "shared.cli"]
    api = spawn([*command, "api"], env, logs / "api.log", cpus=api_cpus)
    stack = Llamaq(f"http://127.0.0.1:{port}", model, Redis.from_url(redis_url), api)
    try:
        for index in range(workers):
            stack.workers.append(spawn([*command, "worker"], env, logs / f"worker{index}.log"))
        children = [api, *stack.workers]
        if workers:
            wait_until(lambda: stack.ready_workers() >= workers, "llamaq workers ready", children, 180)
        else:
            wait_until(lambda: httpx.get(f"{stack.base_url}/health/live").is_success, "api live", children, 60)
        yield stack
    finally:
        stop([*stack.workers, api])
        stack.redis.close()
