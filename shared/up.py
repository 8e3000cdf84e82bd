"""`llamaq up`: everything on one machine: an embedded Redis (unless LLAMAQ_REDIS_URL is set), the API, workers.

Without model specs it serves the one configured model on one worker a usable CPU; with `LLAMAQ_MODELS` or
`--model` (shared/modelspec.py) each model gets workers of its own. Every part is a child (shared/supervisor.py)
that `up` watches, names when it exits, and stops on Ctrl-C or SIGTERM.
"""

import json
import os
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from shared import modelspec
from shared.modelspec import ModelSpec, WorkerPlan
from shared.redis_server import RedisServer
from shared.settings import Settings
from shared.supervisor import Child
from shared.tls import scheme, tls_problem, unverified_context


def _state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "llamaq"


def _child(command: str, env: dict[str, str], label: str | None = None) -> Child:
    return Child(label or command, [sys.executable, "-m", "shared.cli", command], env)


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, which containers and `taskset` narrow)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _wait_ready(
    settings: Settings,
    plans: list[WorkerPlan],
    children: list[Child],
    stopping: Callable[[], bool],
    timeout: float = 180.0,
) -> tuple[Child, str] | None:
    """None once the API lists every model (or `up` is told to stop); else the child to blame and why.

    `children` are the workers, in the order of `plans`, then the API.
    """
    url = f"{scheme(settings)}://{settings.host}:{settings.port}/v1/models"
    headers = {"Authorization": f"Bearer {settings.api_keys[0].get_secret_value()}"} if settings.api_keys else {}
    context = unverified_context()  # our own child, asked only whether it answers
    api, missing = children[-1], {plan.model for plan in plans}
    api_answered = False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stopping():
        if exited := next((child for child in children if child.poll() is not None), None):
            return exited, "during start-up"
        try:
            request = urllib.request.Request(url, headers=headers)
            with urllib.request.urlopen(request, timeout=2, context=context) as response:
                api_answered = True
                missing -= {model["id"] for model in json.loads(response.read())["data"]}
                if not missing:
                    return None
        except (urllib.error.URLError, OSError, ValueError, KeyError):
            pass
        time.sleep(0.25)
    if stopping():
        return None
    if api_answered:
        model = sorted(missing)[0]
        worker = next(child for child, plan in zip(children, plans, strict=False) if plan.model == model)
        return worker, f"but never registered for {model} within {timeout:.0f} s"
    return api, f"but never answered on {url} within {timeout:.0f} s"


def _stop(children: list[Child], timeout: float = 30.0) -> None:
    for child in children:
        child.stop()
    deadline = time.monotonic() + timeout
    for child in children:
        child.wait(deadline - time.monotonic())


def _preflight(settings: Settings, state: Path) -> str | None:
    """Why `up` cannot start here, said before anything starts: TLS files, a taken port, another `up` on this state."""
    if problem := tls_problem(settings):
        return problem
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


def _specs(settings: Settings, flags: list[str] | None, workers: int | None) -> list[ModelSpec]:
    """`--model` flags if given, else LLAMAQ_MODELS; empty: the one configured model."""
    specs = modelspec.parse(flags if flags else modelspec.split(settings.models))
    if specs and workers:
        raise modelspec.SpecError("--workers is for one model; give each model its own (workers=N in its spec)")
    return specs


def _supervise(
    settings: Settings, plans: list[WorkerPlan], children: list[Child], redis_url: str, stopping: Callable[[], bool]
) -> int:
    """Wait for every model to be served, say where, then watch the children until told to stop or one exits."""
    if failed := _wait_ready(settings, plans, children, stopping):
        if stopping():
            return 0
        child, phase = failed
        print(child.report(phase) + "\nllamaq: stopping", file=sys.stderr, flush=True)
        return 1
    if stopping():
        return 0
    served = ", ".join(dict.fromkeys(plan.model for plan in plans))
    print(f"llamaq: serving {served} at {scheme(settings)}://{settings.host}:{settings.port}/v1", flush=True)
    print(f"llamaq: redis at {redis_url}; Ctrl-C stops everything", flush=True)
    while not stopping():
        if exited := next((child for child in children if child.poll() is not None), None):
            print(exited.report("while serving") + "\nllamaq: stopping", file=sys.stderr, flush=True)
            return 1
        time.sleep(0.2)
    return 0


def up(settings: Settings, workers: int | None = None, models: list[str] | None = None) -> int:
    """Everything on one machine: embedded Redis (unless LLAMAQ_REDIS_URL is set), the API, and workers.

    One worker a usable CPU by default, each with `LLAMAQ_N_THREADS` threads and `LLAMAQ_SLOTS` slots: on two
    cores, two one-thread workers of four slots served the most tokens at the lowest time to first token
    (BENCHMARKS.md, capacity). With several models (`models`, or LLAMAQ_MODELS) each gets its own workers.
    """
    try:
        specs = _specs(settings, models, workers)
    except modelspec.SpecError as exc:
        print(f"llamaq: {exc}", file=sys.stderr, flush=True)
        return 2
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
    plans = modelspec.plan(specs, env, settings.model_name, workers)
    children = [*(_child("worker", plan.env, plan.label) for plan in plans), _child("api", env)]
    try:
        return _supervise(settings, plans, children, env["LLAMAQ_REDIS_URL"], lambda: stopping)
    finally:
        _stop(children)
        if server:
            server.stop()
        print("llamaq: stopped", flush=True)
