"""The capacity contestants: llamaq layouts (workers x threads x slots) and llama.cpp's `llama-server`, all warm."""

import contextlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.capacity_config import SAME, Plan, body
from bench.client import run_load
from bench.procs import free_port, spawn, stop, wait_until
from bench.stack import private_redis, running_llamaq

MODEL = "bench-model"
LLAMA_SERVER = "llama-server"
SERVER_SLOTS = 4
SERVER_THREADS = 2


@dataclass(frozen=True)
class Layout:
    workers: int
    threads: int
    slots: int

    @property
    def spec(self) -> str:
        return f"{self.workers}x{self.threads}x{self.slots}"

    @property
    def name(self) -> str:
        return f"llamaq {self.workers}w x {self.threads}t x {self.slots}s"


@dataclass
class Contestant:
    name: str
    url: str
    pids: dict[str, list[int]]
    layout: Layout | None = None  # None: llama-server
    extras: bool = False  # the peer takes (and needs) top_k=0, min_p=0, repeat_penalty=1
    notes: dict[str, str] = field(default_factory=dict)


def candidates(plan: Plan) -> list[Layout]:
    """The best-layout candidates, then the old one-slot layout."""
    out = [Layout(2, 1, s) for s in plan.slot_counts] + [Layout(1, 2, s) for s in plan.slot_counts]
    out.append(Layout(2, 1, 1))
    return [layout for layout in out if not plan.layouts or layout.spec in plan.layouts]


@contextlib.contextmanager
def llamaq(plan: Plan, layout: Layout, weights: Path, scratch: Path) -> Iterator[Contestant]:
    tag = f"{layout.workers}w{layout.threads}t{layout.slots}s"
    settings = {"n_threads": str(layout.threads), "n_ctx": str(plan.n_ctx), "slots": str(layout.slots)}
    settings |= {"model_path": str(weights), "weights": "as-is"}
    with (
        private_redis(scratch / f"redis-{tag}") as redis,
        running_llamaq(redis.url, scratch / f"logs-{tag}", MODEL, layout.workers, **settings) as stack,
    ):
        pids = {"api": [stack.api.pid], "worker": [w.pid for w in stack.workers], "client": [os.getpid()]}
        pids |= {"redis": [redis.process.pid] if redis.process else []}
        yield Contestant(layout.name, f"{stack.base_url}/v1/chat/completions", pids, layout)


def server_args(binary: Path, weights: Path, plan: Plan, port: int) -> list[str]:
    """Threads, slots and a context of `SERVER_SLOTS` per-slot contexts; its prompt cache stays on (the default)."""
    args = [str(binary), "-m", str(weights), "-t", str(SERVER_THREADS), "--parallel", str(SERVER_SLOTS)]
    args += ["-c", str(SERVER_SLOTS * plan.n_ctx), "--host", "127.0.0.1", "--port", str(port)]
    helptext = subprocess.run([str(binary), "--help"], capture_output=True, text=True, timeout=60).stdout
    return [*args, "--no-webui"] if "--no-webui" in helptext else args


@contextlib.contextmanager
def llama_server(binary: Path, plan: Plan, weights: Path, scratch: Path) -> Iterator[Contestant]:
    port = free_port()
    logs = scratch / "logs-llama-server"
    logs.mkdir(parents=True, exist_ok=True)
    args = server_args(binary, weights, plan, port)
    server = spawn(args, dict(os.environ), logs / "llama-server.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(f"{base}/health", timeout=2).is_success, LLAMA_SERVER, [server], 120)
        pids = {"worker": [server.pid], "client": [os.getpid()]}
        notes = {"command": " ".join(args[1:])}
        yield Contestant(LLAMA_SERVER, f"{base}/v1/chat/completions", pids, None, True, notes)
    finally:
        stop([server])


def warm(plan: Plan, contestant: Contestant) -> None:
    request = body(plan, MODEL, SAME, 0, contestant.extras)
    run_load(contestant.url, request, 2, plan.warmup)


@contextlib.contextmanager
def started(plan: Plan, weights: Path, binary: Path | None, scratch: Path) -> Iterator[list[Contestant]]:
    """Every llamaq layout and (when its binary exists) llama-server, up together and warm."""
    with contextlib.ExitStack() as stack:
        field_ = [stack.enter_context(llamaq(plan, layout, weights, scratch)) for layout in candidates(plan)]
        if binary is not None:
            field_.append(stack.enter_context(llama_server(binary, plan, weights, scratch)))
        for contestant in field_:
            warm(plan, contestant)
        yield field_
