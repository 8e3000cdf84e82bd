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
    parser.add_argument("--repeat", type=int, default=1, help="rounds over all contestants; tables show medians")
    parser.add_argument("--out", type=Path, help="write all results as JSON here")
    parser.add_argument("--model-path", type=Path, help="GGUF file (default: the bundled SmolLM2-135M)")
    parser.add_argument("--max-tokens", type=int)
    parser.add_argument("--requests", type=int, help="single-stream requests per contestant")
    parser.add_argument("--clients", type=int, help="concurrent clients")
    parser.add_argument("--per-client", type=int, help="requests per concurrent client")
    parser.add_argument("--skip-peer", action="store_true", help="skip llama-cpp-python's server")
    parser.add_argument("--logs", type=Path, help="keep child process logs here")
    parser.add_argument("--capacity", action="store_true", help="slot layouts vs llama-server (own options: --help)")
    return parser.parse_args(argv)


def workload_of(args: argparse.Namespace) -> Workload:
    base = SMOKE if args.smoke else Workload()
    chosen = {"max_tokens": args.max_tokens, "single_requests": args.requests}
    chosen |= {"clients": args.clients, "per_client": args.per_client}
    return dataclasses.replace(base, **{k: v for k, v in chosen.items() if v is not None})


def _unmeasured(workload: Workload) -> list[Run]:
    """Rows for the peer when it is skipped, so the table keeps its shape."""
    return [
        Run(contests.peer_name(workload.threads), 1, [], 0.0),
        Run(contests.peer_name(2 * workload.threads), workload.clients, [], 0.0),
    ]


def rounds(model_path: Path, workload: Workload, repeat: int, skip_peer: bool, scratch: Path) -> list[list[Row]]:
    """`repeat` rounds over contestants that stay up between rounds; ratios are taken within a round."""
    out = []
    with contests.started(model_path, workload, MODEL, scratch, skip_peer) as field:
        for turn in range(repeat):
            runs = contests.single_round(field, workload, turn) + contests.many_round(field, workload, turn)
            out.append(with_ratios([run.summary() for run in runs + (_unmeasured(workload) if skip_peer else [])]))
    return out


def render(result: dict[str, Any]) -> str:
    machine = ", ".join(f"{k}={v}" for k, v in result["machine"].items())
    workload = result["workload"]
    sections = [
        f"machine: {machine}",
        f"workload: max_tokens={workload['max_tokens']} temperature={workload['temperature']} "
        f"seed={workload['seed']} threads={workload['threads']} repeat={result['repeat']}",
        "load average (1 min) at start, before the front door, at the end: " + " ".join(map(str, result["load_avg"])),
        markdown(result["table"], COLUMNS),
        markdown(result["frontdoor"], FRONTDOOR_COLUMNS),
        markdown(result["targets"], TARGET_COLUMNS),
    ]
    return "\n\n".join(sections)


def main(argv: list[str]) -> int:
    from worker.model import bundled_model_path

    if "--capacity" in argv:
        from bench.capacity_cli import main as capacity_main

        return capacity_main([arg for arg in argv if arg != "--capacity"])
    args = parse(argv)
    workload = workload_of(args)
    model_path = args.model_path or bundled_model_path()
    skip_peer = args.skip_peer or args.smoke
    repeat = max(1, args.repeat)
    # The 1-minute load average before the runs, before the front-door runs, and at the end: the box may be shared.
    loads = [round(os.getloadavg()[0], 2)]
    with tempfile.TemporaryDirectory(prefix="llamaq-bench-") as tmp:
        scratch = args.logs or Path(tmp)
        reps = rounds(model_path, workload, repeat, skip_peer, scratch)
        loads.append(round(os.getloadavg()[0], 2))
        doors = [run_frontdoor(workload, MODEL, scratch) for _ in range(repeat)]
    loads.append(round(os.getloadavg()[0], 2))
    table, frontdoor = merge(reps), merge(doors)
    model_mb = model_path.stat().st_size / 1e6
    result = {
        "machine": describe(),
        "workload": dataclasses.asdict(workload),
        "repeat": repeat,
        "load_avg": loads,
        "model_path": str(model_path),
        "model_mb": model_mb,
        "table": table,
        "frontdoor": frontdoor,
        "targets": targets(table, frontdoor, model_mb, workload.clients, workload.threads),
        "repetitions": [{"table": rows, "frontdoor": door} for rows, door in zip(reps, doors, strict=True)],
    }
    print(render(result), flush=True)
    if args.out:
        args.out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    return 0
