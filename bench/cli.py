"""`llamaq bench`: raw llama.cpp vs llamaq vs llama-cpp-python's server, side by side in one run."""

import argparse
import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Any

import orjson

from bench import contests
from bench.config import SMOKE, Workload
from bench.frontdoor import run_frontdoor
from bench.machine import describe
from bench.report import COLUMNS, FRONTDOOR_COLUMNS, TARGET_COLUMNS, Row, markdown, merge, with_ratios
from bench.stats import Run
from bench.targets import targets

MODEL = "bench-model"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="llamaq bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny run (seconds): 1-2 requests each, no peer server")
    parser.add_argument("--repeat", type=int, default=1, help="repetitions; the tables show medians")
    parser.add_argument("--out", type=Path, help="write all results as JSON here")
    parser.add_argument("--model-path", type=Path, help="GGUF file (default: the bundled SmolLM2-135M)")
    parser.add_argument("--max-tokens", type=int)
    parser.add_argument("--requests", type=int, help="single-stream requests per contestant")
    parser.add_argument("--clients", type=int, help="concurrent clients")
    parser.add_argument("--per-client", type=int, help="requests per concurrent client")
    parser.add_argument("--skip-peer", action="store_true", help="skip llama-cpp-python's server")
    parser.add_argument("--logs", type=Path, help="keep child process logs here")
    return parser.parse_args(argv)


def workload_of(args: argparse.Namespace) -> Workload:
    base = SMOKE if args.smoke else Workload()
    chosen = {"max_tokens": args.max_tokens, "single_requests": args.requests}
    chosen |= {"clients": args.clients, "per_client": args.per_client}
    return dataclasses.replace(base, **{k: v for k, v in chosen.items() if v is not None})


def _peer_runs(model_path: Path, workload: Workload, skip: bool, scratch: Path) -> list[Run]:
    single = f"{contests.PEER} {workload.threads} thread(s)"
    many = f"{contests.PEER} {2 * workload.threads} thread(s)"
    if skip:
        return [Run(single, 1, [], 0.0), Run(many, workload.clients, [], 0.0)]
    return [
        contests.peer_run(model_path, workload, MODEL, workload.threads, 1, scratch),
        contests.peer_run(model_path, workload, MODEL, 2 * workload.threads, workload.clients, scratch),
    ]


def repetition(model_path: Path, workload: Workload, skip_peer: bool, scratch: Path) -> tuple[list[Row], list[Row]]:
    runs = contests.raw_runs(model_path, workload)
    runs += contests.llamaq_runs(workload, MODEL, 1, single=True, scratch=scratch)
    runs += contests.llamaq_runs(workload, MODEL, 2, single=False, scratch=scratch)
    runs += _peer_runs(model_path, workload, skip_peer, scratch)
    rows = with_ratios([run.summary() for run in runs])
    return rows, run_frontdoor(workload, MODEL, scratch)


def render(result: dict[str, Any]) -> str:
    machine = ", ".join(f"{k}={v}" for k, v in result["machine"].items())
    workload = result["workload"]
    sections = [
        f"machine: {machine}",
        f"workload: max_tokens={workload['max_tokens']} temperature={workload['temperature']} "
        f"seed={workload['seed']} threads={workload['threads']} repeat={result['repeat']}",
        "load average (1 min) before each repetition and at the end: " + " ".join(map(str, result["load_avg"])),
        markdown(result["table"], COLUMNS),
        markdown(result["frontdoor"], FRONTDOOR_COLUMNS),
        markdown(result["targets"], TARGET_COLUMNS),
    ]
    return "\n\n".join(sections)


def main(argv: list[str]) -> int:
    from worker.model import bundled_model_path

    args = parse(argv)
    workload = workload_of(args)
    model_path = args.model_path or bundled_model_path()
    skip_peer = args.skip_peer or args.smoke
    reps: list[tuple[list[Row], list[Row]]] = []
    # The 1-minute load average before each repetition and at the end: the box may be shared.
    loads: list[float] = []
    with tempfile.TemporaryDirectory(prefix="llamaq-bench-") as tmp:
        scratch = args.logs or Path(tmp)
        for _ in range(max(1, args.repeat)):
            loads.append(round(os.getloadavg()[0], 2))
            reps.append(repetition(model_path, workload, skip_peer, scratch))
    loads.append(round(os.getloadavg()[0], 2))
    table, frontdoor = merge([rows for rows, _ in reps]), merge([door for _, door in reps])
    model_mb = model_path.stat().st_size / 1e6
    result = {
        "machine": describe(),
        "workload": dataclasses.asdict(workload),
        "repeat": len(reps),
        "load_avg": loads,
        "model_path": str(model_path),
        "model_mb": model_mb,
        "table": table,
        "frontdoor": frontdoor,
        "targets": targets(table, frontdoor, model_mb, workload.clients, workload.threads),
        "repetitions": [{"table": rows, "frontdoor": door} for rows, door in reps],
    }
    print(render(result), flush=True)
    if args.out:
        args.out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    return 0
