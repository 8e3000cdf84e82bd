"""`llamaq bench --capacity [--smoke]`: the run, its markdown and JSON (bench/results/capacity.{md,json} by default)."""

import argparse
import dataclasses
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import orjson

from bench import capacity, capacity_memory
from bench import capacity_report as report
from bench.capacity_config import SMOKE, Plan
from bench.capacity_field import Contestant, started
from bench.machine import describe
from bench.report import Row

RESULTS = Path(__file__).resolve().parent / "results"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="llamaq bench --capacity", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="2 clients, 8 tokens, 1 round (about 40 s)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3)")
    parser.add_argument("--loads", help="concurrent clients, comma-separated (default 8,32)")
    parser.add_argument("--out", type=Path, help="JSON results (default bench/results/capacity.json; none in smoke)")
    parser.add_argument("--md", type=Path, help="markdown results (default bench/results/capacity.md; none in smoke)")
    parser.add_argument("--layouts", help="only these llamaq layouts, WxTxS comma-separated (e.g. 2x1x8,2x1x1)")
    parser.add_argument("--skip-server", action="store_true", help="leave llama-server out")
    parser.add_argument("--logs", type=Path, help="keep child process logs here")
    return parser.parse_args(argv)


def plan_of(args: argparse.Namespace) -> Plan:
    plan = SMOKE if args.smoke else Plan()
    if args.rounds:
        plan = dataclasses.replace(plan, rounds=args.rounds)
    if args.layouts:
        plan = dataclasses.replace(plan, layouts=tuple(args.layouts.split(",")))
    if args.loads:
        plan = dataclasses.replace(plan, loads=tuple(int(n) for n in args.loads.split(",")))
    return plan


def server_binary(args: argparse.Namespace) -> Path | None:
    """The built llama-server; a smoke run never builds it (minutes), the full run does if it must."""
    from bench.llama_server import BINARY, STAMP, cache_root, ensure_llama_server, server_build

    if args.skip_server:
        return None
    if args.smoke:
        home = cache_root() / server_build().key
        return home / BINARY if (home / STAMP).is_file() and (home / BINARY).is_file() else None
    return ensure_llama_server()


def lscpu() -> str:
    out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    return "\n".join(out.splitlines()[:20])


def _measure(plan: Plan, field: list[Contestant], weights: Path, result: dict[str, Any], out: Path | None) -> None:
    texts: capacity.Texts = {}
    rows: list[Row] = []
    for clients in plan.loads:
        rows += capacity.load_rounds(plan, field, clients, texts)
        result["loads"] = rows
        if out:  # what is measured so far survives an interrupted run
            out.with_suffix(".partial.json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    layouts = [c for c in field if c.layout is not None and c.layout.slots > 1]
    result["best"] = report.best_layout(rows, [c.name for c in layouts])
    best = next(c for c in layouts if c.name == result["best"])
    result["load_avg"].append(capacity.loadavg())
    result["single"] = capacity.single_stream(plan, best, weights)
    result["agreement"] = capacity.agreement(plan, best, texts)


def run(plan: Plan, weights: Path, binary: Path | None, scratch: Path, out: Path | None) -> dict[str, Any]:
    result: dict[str, Any] = {"machine": describe(), "lscpu": lscpu(), "plan": dataclasses.asdict(plan)}
    result |= {"weights": str(weights), "load_avg": [capacity.loadavg()], "loads": []}
    with started(plan, weights, binary, scratch) as field:
        result["server_command"] = capacity.peer_command(field)
        _measure(plan, field, weights, result, out)
    result["memory"] = capacity_memory.measure(plan, weights, scratch)
    result["load_avg"].append(capacity.loadavg())
    single_x = next((row["decode_x"] for row in result["single"] if row["decode_x"] is not None), None)
    result["targets"] = report.targets(result["loads"], result["best"], single_x)
    return result


def main(argv: list[str]) -> int:
    from worker.model import bundled_model_path
    from worker.weights import served_weights

    args = parse(argv)
    plan = plan_of(args)
    weights = served_weights(bundled_model_path(), "auto", bundled=True)
    out = args.out or (None if args.smoke else RESULTS / "capacity.json")
    md = args.md or (None if args.smoke else RESULTS / "capacity.md")
    with tempfile.TemporaryDirectory(prefix="llamaq-capacity-") as tmp:
        result = run(plan, weights, server_binary(args), args.logs or Path(tmp), out)
    text = report.render(result)
    print(text, flush=True)
    if out:
        out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    if md:
        machine = f"## Machine\n\n```\n{result['lscpu']}\n```\n"
        md.write_text(f"# Capacity: slots against llama-server\n\n{text}\n\n{machine}")
    return 0
