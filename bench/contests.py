"""The contestants, each warmed before it is measured: raw llama.cpp, llamaq, llama-cpp-python's server."""

import os
from pathlib import Path

from bench.client import run_load
from bench.config import Workload
from bench.peer import running_peer
from bench.procs import RssSampler
from bench.raw import loaded, timed
from bench.stack import private_redis, running_llamaq
from bench.stats import Run

RAW = "raw in-process, prompt cached"
# The worker re-evaluates the whole prompt of a seeded request (see worker/engine.py), as this row does.
RAW_COLD = "raw in-process, full prompt"
LLAMAQ_1 = "llamaq 1 worker"
LLAMAQ_2 = "llamaq 2 workers"
PEER = "llama_cpp.server"


def raw_runs(model_path: Path, workload: Workload) -> list[Run]:
    runs = []
    with loaded(model_path, workload) as llama:
        for name, cold in ((RAW, False), (RAW_COLD, True)):
            # Sampled as "raw", not "worker": this process also holds the client and the bench itself.
            with RssSampler({"raw": [os.getpid()]}) as sampler:
                streams, wall = timed(llama, workload, cold)
            runs.append(Run(name, 1, streams, wall, {}, sampler.cpu_s))
    return runs


def _measure(url: str, body: dict, workload: Workload, name: str, clients: int, pids: dict[str, list[int]]) -> Run:
    """Warm with `clients` concurrent requests, then measure; single-stream runs send `single_requests`."""
    run_load(url, body, clients, workload.warmup)
    per_client = workload.single_requests if clients == 1 else workload.per_client
    with RssSampler(pids) as rss:
        streams, wall = run_load(url, body, clients, per_client)
    return Run(name, clients, streams, wall, rss.peak_mb, rss.cpu_s)


def llamaq_runs(workload: Workload, model: str, workers: int, single: bool, scratch: Path) -> list[Run]:
    """Single stream (when `single`) and `workload.clients` concurrent clients through the API."""
    name = LLAMAQ_1 if workers == 1 else LLAMAQ_2
    settings = {"n_threads": str(workload.threads), "n_ctx": str(workload.n_ctx), "n_batch": str(workload.n_batch)}
    with (
        private_redis(scratch / f"redis-{workers}w") as redis,
        running_llamaq(redis.url, scratch / f"logs-{workers}w", model, workers, **settings) as stack,
    ):
        url = f"{stack.base_url}/v1/chat/completions"
        body = workload.openai_body(model, sampler_extras=False)
        pids = {"api": [stack.api.pid], "worker": [worker.pid for worker in stack.workers]}
        pids |= {"redis": [redis.process.pid] if redis.process else [], "client": [os.getpid()]}
        runs = [_measure(url, body, workload, name, 1, pids)] if single else []
        runs.append(_measure(url, body, workload, name, workload.clients, pids))
    return runs


def peer_run(model_path: Path, workload: Workload, model: str, threads: int, clients: int, scratch: Path) -> Run:
    """llama-cpp-python's server with `threads` threads, measured at `clients` concurrent clients."""
    with running_peer(model_path, model, threads, workload, scratch / f"logs-peer-{threads}t") as (base, server):
        body = workload.openai_body(model, sampler_extras=True)
        url, name = f"{base}/v1/chat/completions", f"{PEER} {threads} thread(s)"
        return _measure(url, body, workload, name, clients, {"worker": [server.pid], "client": [os.getpid()]})
