"""Child processes for the benchmark: start, wait until they answer, sample their memory, stop."""

import contextlib
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn(
    args: Sequence[str], env: dict[str, str], log: Path, cpus: str | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start `args` in its own session, output to `log`; `cpus` pins it with taskset (e.g. "0")."""
    command = ["taskset", "-c", cpus, *args] if cpus else list(args)
    with open(log, "ab") as out:
        return subprocess.Popen(command, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def wait_until(
    check: Callable[[], bool], what: str, children: Sequence[subprocess.Popen[bytes]], timeout: float
) -> None:
    """Poll `check` until it holds; fail early when a child exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(child.poll() is not None for child in children):
            raise RuntimeError(f"{what}: a child process exited early")
        with contextlib.suppress(httpx.HTTPError, ValueError):
            if check():
                return
        time.sleep(0.1)
    raise TimeoutError(what)


def stop(children: Sequence[subprocess.Popen[bytes]], timeout: float = 15.0) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def machine_busy_s() -> float:
    """CPU seconds all cores spent on anything but idling, waiting for I/O or being stolen by the hypervisor."""
    times = psutil.cpu_times()
    return float(times.user + times.nice + times.system + getattr(times, "irq", 0.0) + getattr(times, "softirq", 0.0))


class CpuClock:
    """CPU seconds used by named groups of processes, and `machine`: the busy time of the whole box.

    What the machine spent beyond our groups belongs to other tenants of a shared box: it shows when
    a contestant was starved of its cores.
    """

    def __init__(self, pids: dict[str, list[int]]) -> None:
        self._procs = {name: [psutil.Process(pid) for pid in group] for name, group in pids.items()}

    def read(self) -> dict[str, float]:
        used = dict.fromkeys(self._procs, 0.0)
        for name, group in self._procs.items():
            for proc in group:
                with contextlib.suppress(psutil.Error):
                    times = proc.cpu_times()
                    used[name] += times.user + times.system
        return used | {"machine": machine_busy_s()}

    @contextlib.contextmanager
    def adding_to(self, total: dict[str, float]) -> Iterator[None]:
        """Add the CPU time spent inside the block to `total`."""
        before = self.read()
        yield
        for name, used in self.read().items():
            total[name] = total.get(name, 0.0) + used - before[name]


class RssSampler:
    """Samples the resident memory of named processes on a thread (peak per name); also their CPU time used."""

    def __init__(self, pids: dict[str, list[int]], interval: float = 0.05) -> None:
        self._procs = {name: [psutil.Process(pid) for pid in group] for name, group in pids.items()}
        self._clock = CpuClock(pids)
        self._interval = interval
        self.peak_mb: dict[str, float] = dict.fromkeys(pids, 0.0)
        self.cpu_s: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def __enter__(self) -> "RssSampler":
        self._sample()
        self._cpu_at_start = self._clock.read()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self.cpu_s = {name: used - self._cpu_at_start[name] for name, used in self._clock.read().items()}

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def _sample(self) -> None:
        for name, group in self._procs.items():
            for proc in group:
                with contextlib.suppress(psutil.Error):
                    self.peak_mb[name] = max(self.peak_mb[name], proc.memory_info().rss / 1e6)


ROOT = Path(__file__).resolve().parent.parent


def json_probe(argv: Sequence[str], timeout: float, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a probe in a fresh interpreter (from the repository root) and read the JSON object it prints last."""
    done = subprocess.run(list(argv), env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=True)
    return dict(orjson.loads(done.stdout.strip().splitlines()[-1]))
