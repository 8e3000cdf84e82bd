"""What a llama.cpp build costs in speed: prompt and decode tokens/s of several wheels, side by side.

`python -m bench.builds --build off=W1 --build native=W2 --build portable=W3 --build x64=W3:x64 [--threads 1 2]`
extracts each wheel, then runs one probe process per build per round (bench/build_probe.py), the order
rotated every round. Ratios are taken within a round against the first build named, then the median over
rounds is reported: the machine is shared and noisy, so only side-by-side figures are compared.
"""

import argparse
import os
import statistics
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import orjson

from bench.machine import describe
from bench.procs import json_probe
from worker.model import bundled_model_path

ROOT = Path(__file__).resolve().parent.parent


def extract(wheel: Path, into: Path) -> Path:
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(into)
    return into


def probe(site: Path, variant: str | None, model: Path, threads: int, reps: int) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(ROOT)]))
    argv = [
        sys.executable,
        "-m",
        "bench.build_probe",
        str(model),
        str(threads),
        str(reps),
        *([variant] if variant else []),
    ]
    return json_probe(argv, timeout=600, env=env)


def run(
    builds: dict[str, tuple[Path, str | None]], model: Path, threads: int, rounds: int, reps: int
) -> dict[str, Any]:
    names = list(builds)
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for round_no in range(rounds):
        order = names[round_no % len(names) :] + names[: round_no % len(names)]
        for name in order:
            samples[name].append(probe(*builds[name], model, threads, reps))
    base = names[0]
    rows = {}
    for name in names:
        rows[name] = {
            "cpu_variant": samples[name][0]["cpu_variant"],
            "system_info": samples[name][0]["system_info"],
            **{
                f"{figure}_median": statistics.median(s[figure] for s in samples[name])
                for figure in ("prompt_tps", "decode_tps")
            },
            **{
                f"{figure}_vs_{base}": statistics.median(
                    s[figure] / b[figure] for s, b in zip(samples[name], samples[base], strict=True)
                )
                for figure in ("prompt_tps", "decode_tps")
            },
            "rounds": samples[name],
        }
    return rows


def table(threads: int, rows: dict[str, Any], base: str) -> str:
    lines = [
        f"threads = {threads}",
        "",
        f"| build | CPU backend | prompt tok/s | decode tok/s | prompt vs {base} | decode vs {base} |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, row in rows.items():
        lines.append(
            f"| {name} | {row['cpu_variant']} | {row['prompt_tps_median']:.0f} | {row['decode_tps_median']:.1f} "
            f"| {row[f'prompt_tps_vs_{base}']:.2f} | {row[f'decode_tps_vs_{base}']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.builds", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--build", action="append", required=True, help="NAME=WHEEL[:VARIANT]; the first is the baseline"
    )
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--reps", type=int, default=3, help="measurements per probe (their median is kept)")
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "builds.json")
    args = parser.parse_args(argv)
    model = args.model or bundled_model_path()
    result: dict[str, Any] = {"machine": describe(), "model": model.name, "rounds": args.rounds, "by_threads": {}}
    with tempfile.TemporaryDirectory() as scratch:
        builds = {}
        sites: dict[str, Path] = {}
        for spec in args.build:
            name, _, wheel = spec.partition("=")
            # NAME=WHEEL, or NAME=WHEEL:VARIANT to pin one CPU variant of a runtime-dispatch wheel.
            wheel, _, variant = wheel.partition(":")
            if wheel not in sites:
                sites[wheel] = extract(Path(wheel), Path(scratch) / str(len(sites)))
            builds[name] = (sites[wheel], variant or None)
        for threads in args.threads:
            rows = run(builds, model, threads, args.rounds, args.reps)
            result["by_threads"][str(threads)] = rows
            print(table(threads, rows, next(iter(builds))), "\n", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
