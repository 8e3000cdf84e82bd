"""Overload run: flood a stack (2 workers, a small queue limit) with concurrent requests.

Every request must end 200/202 or 429/503 (never a 5xx of another kind, never a hang), every accepted
background job must reach a terminal state, and `/health/live` is sampled throughout.

    python -m bench.overload [--requests 500] [--workers 2] [--queue-depth 8] [--batch-depth 40] [--json FILE]

Bounded: each request has a deadline, the run stops by itself, and it talks only to its own stack.
"""

import argparse
import asyncio
import json
import multiprocessing
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.machine import describe
from bench.stack import private_redis, running_llamaq
from shared.settings import DEFAULT_MODEL_NAME

KINDS = ("stream", "sync", "background")
TERMINAL = {"completed", "failed", "cancelled", "expired"}
REQUEST_DEADLINE = 300.0
LIVE_EVERY = 0.05


@dataclass
class Outcome:
    kind: str
    status: int  # 0: no answer before the deadline (a hang)
    stream_ended: bool = True
    job_id: str | None = None


@dataclass
class Report:
    requests: int
    workers: int
    queue_depth: int
    batch_depth: int
    seconds: float
    by_kind: dict[str, dict[str, int]]
    server_errors: int
    hangs: int
    unfinished_streams: int
    background_accepted: int
    background_terminal: dict[str, int]
    live_samples: int
    live_p50_ms: float
    live_p99_ms: float
    live_max_ms: float
    live_over_100ms: int
    machine: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        terminal = sum(self.background_terminal.values()) == self.background_accepted
        return not (self.server_errors or self.hangs or self.unfinished_streams or self.live_over_100ms) and terminal


def _body(index: int, model: str) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": f"Say a word about {index}."}], "max_tokens": 16}


async def _one(client: httpx.AsyncClient, index: int, model: str) -> Outcome:
    kind = KINDS[index % len(KINDS)]
    body = _body(index, model)
    try:
        async with asyncio.timeout(REQUEST_DEADLINE):
            if kind == "background":
                reply = await client.post("/v1/jobs", json={"endpoint": "/v1/chat/completions", "body": body})
                job = reply.json().get("id") if reply.status_code == 202 else None
                return Outcome(kind, reply.status_code, job_id=job)
            if kind == "sync":
                return Outcome(kind, (await client.post("/v1/chat/completions", json=body)).status_code)
            async with client.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as reply:
                text = (await reply.aread()).decode()
            ended = reply.status_code != 200 or text.endswith("data: [DONE]\n\n") or '"error"' in text
            return Outcome(kind, reply.status_code, stream_ended=ended)
    except (TimeoutError, httpx.HTTPError):
        return Outcome(kind, 0)


def _sample_live(base_url: str, stop: Any, out: Any) -> None:
    """Runs in its own process, so the flood's client work never delays (or inflates) a sample."""
    samples: list[float] = []
    with httpx.Client(base_url=base_url, timeout=10) as client:
        while not stop.is_set():
            started = time.perf_counter()
            try:
                client.get("/health/live")
                samples.append((time.perf_counter() - started) * 1000)
            except httpx.HTTPError:
                samples.append(10_000.0)
            time.sleep(LIVE_EVERY)
    out.send(samples)


async def _settle(client: httpx.AsyncClient, job_ids: list[str], deadline: float) -> Counter[str]:
    """Poll every accepted background job until it is terminal or the deadline passes."""
    states: dict[str, str] = {}
    while time.monotonic() < deadline and len(states) < len(job_ids):
        for job_id in job_ids:
            if job_id not in states:
                try:
                    status = (await client.get(f"/v1/jobs/{job_id}")).json()["status"]
                except httpx.HTTPError:
                    continue  # a kept-alive connection the server closed meanwhile: ask again next round
                if status in TERMINAL:
                    states[job_id] = status
        await asyncio.sleep(0.5)
    return Counter(states.values())


async def flood(base_url: str, requests: int, model: str) -> tuple[list[Outcome], Counter[str], float]:
    limits = httpx.Limits(max_connections=requests + 10, max_keepalive_connections=requests + 10)
    timeout = httpx.Timeout(REQUEST_DEADLINE, connect=30)
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=timeout) as client:
        outcomes = await asyncio.gather(*[_one(client, i, model) for i in range(requests)])
        accepted = [o.job_id for o in outcomes if o.job_id]
        terminal = await _settle(client, accepted, time.monotonic() + REQUEST_DEADLINE)
    return list(outcomes), terminal, time.monotonic() - started


def sampled_flood(base_url: str, requests: int, model: str) -> tuple[list[Outcome], Counter[str], list[float], float]:
    """The flood, with /health/live sampled from a separate process the whole time."""
    receiving, sending = multiprocessing.Pipe(duplex=False)
    stop = multiprocessing.Event()
    sampler = multiprocessing.Process(target=_sample_live, args=(base_url, stop, sending), daemon=True)
    sampler.start()
    try:
        outcomes, terminal, seconds = asyncio.run(flood(base_url, requests, model))
    finally:
        stop.set()
        samples = receiving.recv() if receiving.poll(30) else []
        sampler.join(10)
    return outcomes, terminal, samples, seconds


def run(requests: int = 500, workers: int = 2, queue_depth: int = 8, batch_depth: int = 40) -> Report:
    model = DEFAULT_MODEL_NAME
    with tempfile.TemporaryDirectory(prefix="llamaq-overload-") as tmp:
        directory = Path(tmp)
        with private_redis(directory / "redis") as redis_server, running_llamaq(
            redis_server.url, directory / "logs", model, workers,
            max_queue_depth=str(queue_depth), max_batch_queue_depth=str(batch_depth),
        ) as stack:  # fmt: skip
            outcomes, terminal, samples, seconds = sampled_flood(stack.base_url, requests, model)
    return _report(outcomes, terminal, samples, seconds, requests, workers, queue_depth, batch_depth)


def _report(
    outcomes: list[Outcome], terminal: Counter[str], samples: list[float], seconds: float, *settings: int
) -> Report:
    requests, workers, queue_depth, batch_depth = settings
    by_kind = {kind: dict(Counter(str(o.status) for o in outcomes if o.kind == kind)) for kind in KINDS}
    ordered = sorted(samples) or [0.0]
    return Report(
        requests=requests,
        workers=workers,
        queue_depth=queue_depth,
        batch_depth=batch_depth,
        seconds=round(seconds, 1),
        by_kind=by_kind,
        server_errors=sum(1 for o in outcomes if o.status >= 500 and o.status != 503),
        hangs=sum(1 for o in outcomes if o.status == 0),
        unfinished_streams=sum(1 for o in outcomes if not o.stream_ended),
        background_accepted=sum(1 for o in outcomes if o.job_id),
        background_terminal=dict(terminal),
        live_samples=len(samples),
        live_p50_ms=round(statistics.median(ordered), 1),
        live_p99_ms=round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 1),
        live_max_ms=round(ordered[-1], 1),
        live_over_100ms=sum(1 for sample in samples if sample > 100),
        machine=describe(),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.overload", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--queue-depth", type=int, default=8)
    parser.add_argument("--batch-depth", type=int, default=40)
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    report = run(args.requests, args.workers, args.queue_depth, args.batch_depth)
    text = json.dumps(asdict(report) | {"ok": report.ok}, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
