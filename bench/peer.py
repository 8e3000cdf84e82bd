"""llama-cpp-python's own OpenAI server on the same model, threads and context, as the peer to beat."""

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from subprocess import Popen

import httpx

from bench.config import Workload
from bench.procs import free_port, spawn, stop, wait_until


@contextlib.contextmanager
def running_peer(
    model_path: Path, alias: str, threads: int, workload: Workload, logs: Path
) -> Iterator[tuple[str, Popen[bytes]]]:
    """`python -m llama_cpp.server` with `--interrupt_requests False`: its default cuts concurrent streams."""
    port = free_port()
    args = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(model_path),
        "--model_alias", alias,
        "--n_threads", str(threads),
        "--n_threads_batch", str(threads),
        "--n_ctx", str(workload.n_ctx),
        "--n_batch", str(workload.n_batch),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--interrupt_requests", "False",
        "--verbose", "False",
    ]  # fmt: skip
    logs.mkdir(parents=True, exist_ok=True)
    server = spawn(args, dict(os.environ), logs / "llama_cpp_server.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(f"{base}/v1/models", timeout=2).is_success, "llama_cpp.server", [server], 120)
        yield base, server
    finally:
        stop([server])
