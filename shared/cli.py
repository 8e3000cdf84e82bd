"""The `llamaq` command: `up`, `api`, `worker`, `dashboard`, `bench`."""

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from shared.redis_server import RedisServer
from shared.settings import Settings, get_settings


def _state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "llamaq"


def _child(command: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    # A new session per child: Ctrl-C reaches `up`, which then stops each child in order.
    return subprocess.Popen([sys.executable, "-m", "shared.cli", command], env=env, start_new_session=True)


def _wait_ready(settings: Settings, children: list[subprocess.Popen[bytes]], timeout: float = 180.0) -> bool:
    url = f"http://{settings.host}:{settings.port}/v1/models"
    headers = {"Authorization": f"Bearer {settings.api_keys[0].get_secret_value()}"} if settings.api_keys else {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(child.poll() is not None for child in children):
            return False
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=2) as response:
                if settings.model_name.encode() in response.read():
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    return False


def _stop(children: list[subprocess.Popen[bytes]], timeout: float = 30.0) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for child in children:
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def up(settings: Settings) -> int:
    """Everything on one machine: embedded Redis (unless LLAMAQ_REDIS_URL is set), the API, one worker."""
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
    children = [_child("worker", env), _child("api", env)]
    try:
        if _wait_ready(settings, children):
            print(
                f"llamaq: serving {settings.model_name} at http://{settings.host}:{settings.port}/v1",
                flush=True,
            )
            print(f"llamaq: redis at {env['LLAMAQ_REDIS_URL']}; Ctrl-C stops everything", flush=True)
        elif not stopping:
            print("llamaq: a component failed to start; stopping", file=sys.stderr, flush=True)
            return 1
        while not stopping and all(child.poll() is None for child in children):
            time.sleep(0.2)
        return 0 if stopping else 1
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
    sub.add_parser("up", help="embedded Redis + API + one worker on this machine")
    sub.add_parser("api", help="the HTTP API (needs LLAMAQ_REDIS_URL)")
    sub.add_parser("worker", help="one model worker (needs LLAMAQ_REDIS_URL)")
    sub.add_parser("dashboard", help="rq-dashboard behind authentication")
    bench = sub.add_parser("bench", help="benchmarks: raw llama.cpp vs llamaq vs llama-cpp-python's server")
    bench.add_argument("args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    settings = get_settings()
    if args.command == "up":
        return up(settings)
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
