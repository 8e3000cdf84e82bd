"""What each setting costs in memory: worker RSS by context and threads, the API over a burst, Redis per job.

`python -m bench.memory [--out FILE] [--smoke]` starts a private stack per worker setting (redis-server on a
unix socket, `llamaq api`, one `llamaq worker`), prints markdown tables and writes JSON.
"""

import argparse
import dataclasses
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

from bench.machine import describe
from bench.memory_probes import DASHBOARD_KEY, Plan, Row, probe_api, probe_worker, rss_mb, watch_expiry
from bench.procs import spawn, stop, wait_until
from bench.report import markdown
from bench.stack import Llamaq, private_redis, running_llamaq
from shared.settings import Settings

MODEL = "bench-model"
SMOKE = Plan(requests=2, max_tokens=8, burst_clients=4, burst_tokens=4, result_ttl=15)
DEFAULT = "LLAMAQ_N_CTX=2048, LLAMAQ_N_THREADS=1 (defaults)"
# (label, LLAMAQ_* overrides of the worker); the default worker's run also measures the API and Redis.
SETTINGS: list[tuple[str, dict[str, str]]] = [
    ("LLAMAQ_N_CTX=512", {"n_ctx": "512"}),
    (DEFAULT, {}),
    ("LLAMAQ_N_CTX=8192", {"n_ctx": "8192"}),
    ("LLAMAQ_N_THREADS=2", {"n_threads": "2"}),
]
PROCESS_COLUMNS = [
    ("what", "what"), ("setting", "setting"), ("idle_mb", "idle RSS MB"), ("peak_mb", "peak RSS MB"),
    ("after_mb", "RSS MB after"), ("anon_mb", "anon MB after"), ("requests", "requests"), ("failed", "failed"),
]  # fmt: skip
REDIS_COLUMNS = [
    ("setting", "setting"), ("jobs", "jobs"), ("failed", "failed"), ("tokens_per_job", "tokens/job"),
    ("kb_per_job", "KB/job (used_memory)"), ("records_kb_per_job", "KB/job (its records)"),
    ("kb_after_jobs", "KB held after jobs"), ("kb_freed", "KB freed by expiry"), ("records_left", "records left"),
    ("expired_after_s", "all expired after s"),
]  # fmt: skip


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny run: 2 short requests per setting, 15 s expiry")
    parser.add_argument("--requests", type=int, help="sequential requests per worker setting")
    parser.add_argument("--out", type=Path, help="write all results as JSON here")
    parser.add_argument("--logs", type=Path, help="keep child process logs here")
    return parser.parse_args(argv)


def measure_defaults(stack: Llamaq, plan: Plan) -> tuple[list[Row], list[Row]]:
    """The default worker, Redis per job and as records expire, then the API over a burst."""
    api_idle = rss_mb(stack.api.pid)
    worker, jobs = probe_worker(stack, plan)
    jobs |= watch_expiry(stack.redis, jobs.pop("empty"), plan)
    api, burst = probe_api(stack, plan, api_idle)
    setting = f"{plan.burst_clients} concurrent streams, dashboard mounted and viewed"
    rows: list[Row] = [{"what": "worker", "setting": DEFAULT} | worker, {"what": "API", "setting": setting} | api]
    sequential = f"{plan.requests} sequential jobs, max_tokens={plan.max_tokens}, TTL {plan.result_ttl} s"
    # The burst's records are not watched expire: they are the same records as the sequential jobs'.
    unwatched: Row = dict.fromkeys(field for field, _ in REDIS_COLUMNS)
    burst_setting = f"{plan.burst_clients} concurrent jobs, max_tokens={plan.burst_tokens}"
    redis = [{"setting": sequential} | jobs, unwatched | {"setting": burst_setting} | burst]
    return rows, redis


def swap_worker(stack: Llamaq, env: dict[str, str], log: Path) -> None:
    """Replace the stack's worker by one started with `env`; the API and Redis stay up."""
    stop(stack.workers)
    # A worker deregisters as it stops: wait until none is live, so readiness below is the new one's.
    wait_until(lambda: stack.ready_workers() == 0, "old worker gone", [stack.api], 30)
    stack.workers[:] = [spawn([sys.executable, "-m", "shared.cli", "worker"], env, log)]
    wait_until(lambda: stack.ready_workers() >= 1, f"worker of {log.stem} ready", [stack.api, *stack.workers], 180)


def measure(plan: Plan, scratch: Path) -> tuple[list[Row], list[Row]]:
    """One Redis and one API; the default worker first (also API and Redis figures), then each other setting."""
    settings = {"dashboard_keys": DASHBOARD_KEY, "result_ttl": str(plan.result_ttl)}
    with private_redis(scratch / "redis") as server, running_llamaq(server.url, scratch, MODEL, 1, **settings) as stack:
        processes, redis = measure_defaults(stack, plan)
        for label, overrides in SETTINGS:
            if label == DEFAULT:
                continue
            env = {
                **os.environ,
                "LLAMAQ_REDIS_URL": server.url,
                "LLAMAQ_MODEL_NAME": MODEL,
                "LLAMAQ_LOG_LEVEL": "WARNING",
            }
            # The same record TTL as the API: the worker applies its own to the events it appends.
            env |= {f"LLAMAQ_{key.upper()}": value for key, value in (settings | overrides).items()}
            swap_worker(stack, env, scratch / f"worker-{label.lower().replace('=', '-')}.log")
            worker, _ = probe_worker(stack, plan)
            processes.append({"what": "worker", "setting": label} | worker)
    # Workers in the order of SETTINGS, then the API.
    order = [label for label, _ in SETTINGS]
    processes.sort(key=lambda row: order.index(row["setting"]) if row["what"] == "worker" else len(order))
    return processes, redis


def render(result: dict[str, Any]) -> str:
    machine = ", ".join(f"{k}={v}" for k, v in result["machine"].items())
    plan = ", ".join(f"{k}={v}" for k, v in result["plan"].items())
    plan += f"; model {result['model_mb']:.0f} MB; LLAMAQ_STREAM_MAXLEN={result['stream_maxlen']} (default)"
    sections = [f"machine: {machine}", f"plan: {plan}", markdown(result["processes"], PROCESS_COLUMNS)]
    return "\n\n".join([*sections, markdown(result["redis"], REDIS_COLUMNS)])


def main(argv: list[str]) -> int:
    from worker.model import bundled_model_path

    args = parse(argv)
    # SIGTERM unwinds like Ctrl-C, so the stacks' cleanup stops the API, workers and Redis this run started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    plan = SMOKE if args.smoke else Plan()
    if args.requests:
        plan = dataclasses.replace(plan, requests=args.requests)
    machine = describe()
    with tempfile.TemporaryDirectory(prefix="llamaq-memory-") as tmp:
        processes, redis = measure(plan, args.logs or Path(tmp))
    model_path = os.environ.get("LLAMAQ_MODEL_PATH") or str(bundled_model_path())
    result: dict[str, Any] = {"machine": machine, "plan": dataclasses.asdict(plan), "model_path": model_path}
    result |= {"stream_maxlen": Settings.model_fields["stream_maxlen"].default}
    result |= {"model_mb": Path(model_path).stat().st_size / 1e6, "processes": processes, "redis": redis}
    print(render(result), flush=True)
    if args.out:
        args.out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
