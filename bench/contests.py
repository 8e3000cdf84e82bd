"""The contestants, started once and kept warm, then measured in turns so that a busy box hits them alike."""

import asyncio
import contextlib
import functools
import os
import random
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from bench.client import run_load, stream_chat
from bench.config import Workload
from bench.peer import running_peer
from bench.procs import CpuClock, RssSampler
from bench.raw import loaded, one
from bench.stack import private_redis, running_llamaq
from bench.stats import Run, Stream

RAW = "raw in-process, prompt cached"
# The worker re-evaluates the whole prompt of a seeded request (see worker/engine.py), as this row does.
RAW_COLD = "raw in-process, full prompt"
LLAMAQ_1 = "llamaq 1 worker"
LLAMAQ_2 = "llamaq 2 workers"
PEER = "llama_cpp.server"

T = TypeVar("T")


def peer_name(threads: int) -> str:
    return f"{PEER} {threads} thread(s)"


@dataclass
class Served:
    """A contestant behind HTTP: where its requests go and which processes serve them."""

    name: str
    url: str
    body: dict[str, Any]
    pids: dict[str, list[int]]


@dataclass
class Field:
    llama: Any  # raw llama.cpp in this process
    single: list[Served]  # taking turns with raw llama.cpp, one request at a time
    many: list[Served]  # taking turns at `workload.clients` concurrent clients


@contextlib.contextmanager
def _llamaq(workload: Workload, model: str, workers: int, scratch: Path) -> Iterator[Served]:
    settings = {"n_threads": str(workload.threads), "n_ctx": str(workload.n_ctx), "n_batch": str(workload.n_batch)}
    with (
        private_redis(scratch / f"redis-{workers}w") as redis,
        running_llamaq(redis.url, scratch / f"logs-{workers}w", model, workers, **settings) as stack,
    ):
        pids = {"api": [stack.api.pid], "worker": [worker.pid for worker in stack.workers]}
        pids |= {"redis": [redis.process.pid] if redis.process else [], "client": [os.getpid()]}
        url, body = f"{stack.base_url}/v1/chat/completions", workload.openai_body(model, sampler_extras=False)
        yield Served(LLAMAQ_1 if workers == 1 else LLAMAQ_2, url, body, pids)


@contextlib.contextmanager
def _peer(model_path: Path, workload: Workload, model: str, threads: int, scratch: Path) -> Iterator[Served]:
    with running_peer(model_path, model, threads, workload, scratch / f"logs-peer-{threads}t") as (base, server):
        body = workload.openai_body(model, sampler_extras=True)
        pids = {"worker": [server.pid], "client": [os.getpid()]}
        yield Served(peer_name(threads), f"{base}/v1/chat/completions", body, pids)


@contextlib.contextmanager
def started(model_path: Path, workload: Workload, model: str, scratch: Path, skip_peer: bool) -> Iterator[Field]:
    """Raw llama.cpp, llamaq with 1 and with 2 workers, and the peer at 1 and 2x threads, all warm."""
    with contextlib.ExitStack() as stack:
        llama = stack.enter_context(loaded(model_path, workload))
        one_worker = stack.enter_context(_llamaq(workload, model, 1, scratch))
        two_workers = stack.enter_context(_llamaq(workload, model, 2, scratch))
        threads = [] if skip_peer else [workload.threads, 2 * workload.threads]
        peers = [stack.enter_context(_peer(model_path, workload, model, n, scratch)) for n in threads]
        field = Field(llama, [one_worker, *peers[:1]], [one_worker, two_workers, *peers[1:]])
        for served in (one_worker, two_workers, *peers):
            run_load(served.url, served.body, 2, workload.warmup)
        yield field


def _turn(items: list[T], turn: int) -> list[T]:
    """`items` starting at a different one each turn, so that none always goes first."""
    k = turn % len(items)
    return items[k:] + items[:k]


async def _raw(llama: Any, workload: Workload, cold: bool) -> Stream:
    return one(llama, workload, cold)


async def _single_round(field: Field, workload: Workload, turn: int) -> list[Run]:
    me = os.getpid()
    async with contextlib.AsyncExitStack() as stack:
        client = await stack.enter_async_context(httpx.AsyncClient(timeout=httpx.Timeout(600.0)))
        senders: list[tuple[str, dict[str, list[int]], Callable[[], Awaitable[Stream]]]] = [
            (RAW, {"raw": [me]}, functools.partial(_raw, field.llama, workload, False)),
            (RAW_COLD, {"raw": [me]}, functools.partial(_raw, field.llama, workload, True)),
        ]
        senders += [(s.name, s.pids, functools.partial(stream_chat, client, s.url, s.body)) for s in field.single]
        samplers = {s.name: stack.enter_context(RssSampler(s.pids)) for s in field.single}
        clocks = {name: CpuClock(pids) for name, pids, _ in senders}
        streams: dict[str, list[Stream]] = {name: [] for name, _, _ in senders}
        cpu: dict[str, dict[str, float]] = {name: {} for name, _, _ in senders}
        for index in range(workload.single_requests):
            # A fresh order each time: the one that runs right after another finds the caches it left.
            order = list(senders)
            random.Random(turn * 7919 + index).shuffle(order)
            for name, _, send in order:
                with clocks[name].adding_to(cpu[name]):
                    streams[name].append(await send())
    peaks = {name: sampler.peak_mb for name, sampler in samplers.items()}
    return [
        Run(name, 1, streams[name], sum(s.end for s in streams[name]), peaks.get(name, {}), cpu[name])
        for name, _, _ in senders
    ]


def single_round(field: Field, workload: Workload, turn: int) -> list[Run]:
    """`single_requests` requests per contestant, one at a time, each contestant in turn."""
    return asyncio.run(_single_round(field, workload, turn))


def many_round(field: Field, workload: Workload, turn: int) -> list[Run]:
    """Each HTTP contestant in turn under `clients` concurrent clients sending `per_client` requests each."""
    runs: dict[str, Run] = {}
    for served in _turn(field.many, turn):
        with RssSampler(served.pids) as rss:
            streams, wall = run_load(served.url, served.body, workload.clients, workload.per_client)
        runs[served.name] = Run(served.name, workload.clients, streams, wall, rss.peak_mb, rss.cpu_s)
    return [runs[served.name] for served in field.many]
