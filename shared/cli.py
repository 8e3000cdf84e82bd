"""The `llamaq` command: `up` (shared/up.py), `api`, `worker`, `dashboard`, `bench`."""

import argparse
import sys

from shared.settings import get_settings
from shared.up import up


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
    up_parser.add_argument(
        "--model",
        action="append",
        metavar="NAME=PATH[,OPTION=VALUE...]",
        help="a model to serve (repeat for several; PATH a GGUF or `bundled`; options: workers, slots, n_ctx, "
        "max_queue_depth, ... see LLAMAQ_MODELS); replaces LLAMAQ_MODELS",
    )
    sub.add_parser("api", help="the HTTP API (needs LLAMAQ_REDIS_URL)")
    sub.add_parser("worker", help="one model worker (needs LLAMAQ_REDIS_URL)")
    sub.add_parser("dashboard", help="rq-dashboard behind authentication")
    bench = sub.add_parser("bench", help="benchmarks: raw llama.cpp vs llamaq vs llama-cpp-python's server")
    bench.add_argument("args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    settings = get_settings()
    if args.command == "up":
        return up(settings, args.workers, args.model)
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
