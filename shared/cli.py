"""The `llamaq` command: `up`, `api`, `worker`, `dashboard`, `bench`."""

import argparse
import os
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from shared.redis_server import RedisServer
from shared.settings import Settings, get_settings
from shared.supervisor import Child


def _state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "llamaq"


def _child(command: str, env: dict[str, str], label: str | None = None) -> Child:
    return Child(label or command, [sys.executable, "-m", "shared.cli", command], env)


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, which containers and `taskset` narrow)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _wait_ready(
    settings: Settings, children: list[Child], stopping: Callable[[], bool], timeout: float = 180.0
) -> tuple[Child, str] | None:
    """None once the API lists the model (or `up` is told to stop); else the child to blame and why.

    `children` are the workers, then the API.
    """
    url = f"http://{settings.host}:{settings.port}/v1/models"
    headers = {"Authorization": f"Bearer {settings.api_keys[0].get_secret_value()}"} if settings.api_keys else {}
    worker, api = children[0], children[-1]
    api_answered = False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stopping():
        if exited := next((child for child in children if child.poll() is not None), None):
            return exited, "during start-up"
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=2) as response:
                api_answered = True
                if settings.model_name.encode() in response.read():
                    return None
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    if stopping():
        return None
    if api_answered:
        return worker, f"but never registered for {settings.model_name} within {timeout:.0f} s"
    return api, f"but never answered on {url} within {timeout:.0f} s"


def _stop(children: list[Child], timeout: float = 30.0) -> None:
    for child in children:
        child.stop()
    deadline = time.monotonic() + timeout
    for child in children:
        child.wait(deadline - time.monotonic())


def _preflight(settings: Settings, state: Path) -> str | None:
    """Why `up` cannot start here, said before anything starts: a taken API port, another `up` on this state."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((settings.host, settings.port))
        except OSError as exc:
            return (
                f"llamaq: cannot listen on {settings.host}:{settings.port} ({exc.strerror}): another program uses "
                "that port. Stop it, or choose another port with LLAMAQ_PORT=8001."
            )
    if not settings.redis_url and RedisServer(state / "redis").answers():
        return (
            f"llamaq: another llamaq up is running with its Redis in {state / 'redis'}. Stop it first, or give "
            "this one its own state with XDG_STATE_HOME=/some/dir (or an external Redis with LLAMAQ_REDIS_URL)."
        )
    return None


def up(settings: Settings, workers: int | None = None) -> int:
    """Everything on one machine: embedded Redis (unless LLAMAQ_REDIS_URL is set), the API, and workers.

    One worker a usable CPU by default, each with `LLAMAQ_N_THREADS` threads and `LLAMAQ_SLOTS` slots: on two
    cores, two one-thread workers of four slots served the most tokens at the lowest time to first token
    (BENCHMARKS.md, capacity).
    """
    workers = workers or max(1, usable_cpus() // settings.n_threads)
    if problem := _preflight(settings, _state_dir()):
        print(problem, file=sys.stderr, flush=True)
        return 1
    server = None
    env = dict(os.environ)
    if not settings.redis_url:
        server = RedisServer(_state_dir() / "redis")
        env["LLAMAQ_REDIS_URL"] = server.start()
    stopping = False

    def _on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    labels = ["worker", *(f"worker #{index}" for index in range(2, workers + 1))]
    children = [*(_child("worker", env, label) for label in labels), _child("api", env)]
    try:
        if failed := _wait_ready(settings, children, lambda: stopping):
            if stopping:
                return 0
            child, phase = failed
            print(child.report(phase) + "\nllamaq: stopping", file=sys.stderr, flush=True)
            return 1
        if stopping:
            return 0
        print(f"llamaq: serving {settings.model_name} at http://{settings.host}:{settings.port}/v1", flush=True)
        print(f"llamaq: redis at {env['LLAMAQ_REDIS_URL']}; Ctrl-C stops everything", flush=True)
        while not stopping:
            if exited := next((child for child in children if child.poll() is not None), None):
                print(exited.report("while serving") + "\nllamaq: stopping", file=sys.stderr, flush=True)
                return 1
            time.sleep(0.2)
        return 0
    finally:
        _stop(children)
        if server:
            server.stop()
        print("llamaq: stopped", flush=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:
        # argparse's REMAINDER drops options that come first (`llamaq bench --smoke`): pass them on untouched.
        from bench.cli import main as bench_main

        return bench_main(argv[1:])
    parser = argparse.ArgumentParser(prog="llamaq", description="OpenAI-compatible serving through a Redis queue.")
    sub = parser.add_subparsers(dest="command", required=True)
    up_parser = sub.add_parser("up", help="embedded Redis + API + workers on this machine")
    up_parser.add_argument(
        "--workers", type=int, help="workers to start (default: one a usable CPU / LLAMAQ_N_THREADS)"
    )
    sub.add_parser("api", help="the HTTP API (needs LLAMAQ_REDIS_URL)")
    sub.add_parser("worker", help="one model worker (needs LLAMAQ_REDIS_URL)")
    sub.add_parser("dashboard", help="rq-dashboard behind authentication")
    bench = sub.add_parser("bench", help="benchmarks: raw llama.cpp vs llamaq vs llama-cpp-python's server")
    bench.add_argument("args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    settings = get_settings()
    if args.command == "up":
        return up(settings, args.workers)
    if args.command == "api":
        from api.server import main as api_main

        api_main(settings)
    elif args.command == "worker":
        from worker.main import main as worker_main

        worker_main(settings)
    elif args.command == "dashboard":
        from api.dashboard import main as dashboard_main

        dashboard_main(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
