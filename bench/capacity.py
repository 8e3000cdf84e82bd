"""`llamaq bench --capacity`: llamaq's slot layouts against llama.cpp's llama-server on the same cores, in turns."""

import asyncio
import dataclasses
import os
from pathlib import Path
from typing import Any

import httpx

from bench import capacity_report as report
from bench.capacity_config import DISTINCT, PROMPT, WORKLOADS, Plan, body
from bench.capacity_field import LLAMA_SERVER, MODEL, Contestant
from bench.client import load_each, stream_chat
from bench.config import Workload
from bench.procs import RssSampler
from bench.raw import loaded, one
from bench.report import Row, merge
from bench.stats import Run, Stream, median

Texts = dict[tuple[str, int], list[list[str]]]  # (contestant, clients) -> per round, answers in request order


def _turn(items: list[Contestant], turn: int) -> list[Contestant]:
    k = turn % len(items)
    return items[k:] + items[:k]


def _measure(plan: Plan, contestant: Contestant, clients: int, workload: str) -> tuple[Row, list[str]]:
    def bodies(who: int, k: int) -> dict[str, Any]:
        return body(plan, MODEL, workload, who * plan.per_client + k, contestant.extras)

    with RssSampler(contestant.pids) as rss:
        streams, wall = asyncio.run(load_each(contestant.url, bodies, clients, plan.per_client))
    row = Run(contestant.name, clients, streams, wall, rss.peak_mb, rss.cpu_s).summary() | {"workload": workload}
    # Why streams failed: the error, or the finish reason and token count of a stream that ended without one.
    row["failures"] = [f"{s.error or s.finish_reason} tokens={s.tokens} ttft={s.ttft}" for s in streams if not s.ok]
    return row, [s.text if s.ok else "" for s in streams]


def load_rounds(plan: Plan, field: list[Contestant], clients: int, texts: Texts) -> list[Row]:
    """`plan.rounds` rounds at `clients` clients, both workloads; who goes first rotates; medians of the rounds."""
    reps: list[list[Row]] = []
    for turn in range(plan.rounds):
        rows: list[Row] = []
        for workload in WORKLOADS:
            measured = {}
            for contestant in _turn(field, turn):
                measured[contestant.name], answers = _measure(plan, contestant, clients, workload)
                if workload == DISTINCT:
                    texts.setdefault((contestant.name, clients), []).append(answers)
            rows += report.against_peer([measured[c.name] for c in field])
        reps.append(rows)
        print(f"  {clients} clients, round {turn + 1}/{plan.rounds} done", flush=True)
    return merge(reps)


async def _alone(contestant: Contestant, requests: list[dict[str, Any]]) -> list[Stream]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(600.0)) as client:
        return [await stream_chat(client, contestant.url, request) for request in requests]


def _where(index: int, got: str, want: str) -> dict[str, Any]:
    """Where a batched answer leaves the one given alone: request index and first differing character."""
    at = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), min(len(got), len(want)))
    return {"request": index, "first_difference_at_char": at, "batched_chars": len(got), "alone_chars": len(want)}


def agreement(plan: Plan, best: Contestant, texts: Texts) -> list[Row]:
    """Each batched answer of the distinct workload against the same request answered alone by the best layout."""
    count = max(plan.loads) * plan.per_client
    alone = [s.text for s in asyncio.run(_alone(best, [body(plan, MODEL, DISTINCT, i, False) for i in range(count)]))]
    rows = []
    for (name, clients), rounds in texts.items():
        pairs = [(i, got, alone[i]) for answers in rounds for i, got in enumerate(answers)]
        same = sum(got == want and bool(want) for _, got, want in pairs)
        differ = [_where(i, got, want) for i, got, want in pairs if got != want or not want]
        rows.append({"scenario": name, "clients": clients, "compared": len(pairs), "identical": same,
                     "fraction": same / len(pairs) if pairs else None, "differ": differ[:20]})  # fmt: skip
    return rows


def single_stream(plan: Plan, best: Contestant, weights: Path) -> list[Row]:
    """One client, the best layout against raw llama-cpp-python in process (same weights and threads), alternating."""
    assert best.layout is not None
    threads = best.layout.threads
    raw_load = Workload(prompt=PROMPT, max_tokens=plan.max_tokens, threads=threads, n_ctx=plan.n_ctx)
    request = body(plan, MODEL, "same prompt", 0, False)
    got: dict[str, list[Stream]] = {"raw": [], "llamaq": []}
    ratios = []
    with loaded(weights, raw_load) as llama:
        for _ in range(plan.rounds):
            mine: dict[str, list[Stream]] = {"raw": [], "llamaq": []}
            for _ in range(plan.single_requests):
                mine["raw"].append(one(llama, raw_load, cold=False))
                mine["llamaq"] += asyncio.run(_alone(best, [request]))
            rates = {k: median([r for r in (s.decode_rate for s in v) if r]) for k, v in mine.items()}
            ratios.append(rates["llamaq"] / rates["raw"] if rates["llamaq"] and rates["raw"] else None)
            for key, streams in mine.items():
                got[key] += streams
    names = {"raw": f"raw llama-cpp-python in process, {threads} thread(s)", "llamaq": best.name}
    rows = []
    for key, streams in got.items():
        decode = [r for r in (s.decode_rate for s in streams) if r]
        ttfts = [s.ttft * 1000 for s in streams if s.ttft is not None]
        rows.append({"scenario": names[key], "threads": threads, "requests": len(streams),
                     "decode_tok_s": median(decode), "ttft_p50_ms": median(ttfts),
                     "decode_x": median([r for r in ratios if r]) if key == "llamaq" else None})  # fmt: skip
    return rows


def plan_dict(plan: Plan) -> dict[str, Any]:
    return dataclasses.asdict(plan)


def loadavg() -> float:
    return round(os.getloadavg()[0], 2)


def peer_command(field: list[Contestant]) -> str | None:
    return next((c.notes.get("command") for c in field if c.name == LLAMA_SERVER), None)
