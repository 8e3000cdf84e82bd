"""Child processes for the benchmark: start, wait until they answer, sample their memory, stop."""

import contextlib
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx
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


class RssSampler:
    """Samples the resident memory of named processes on a thread (peak per name); also their CPU time used.

    `cpu_s["machine"]` is the busy CPU time of the whole machine over the same span: what is not ours
    belongs to other tenants of a shared box, and shows when a contestant was starved of its cores.
    """

    def __init__(self, pids: dict[str, list[int]], interval: float = 0.05) -> None:
        self._procs = {name: [psutil.Process(pid) for pid in group] for name, group in pids.items()}
        self._interval = interval
        self.peak_mb: dict[str, float] = dict.fromkeys(pids, 0.0)
        self.cpu_s: dict[str, float] = dict.fromkeys(pids, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def __enter__(self) -> "RssSampler":
        self._sample()
        self._cpu_at_start = self._cpu()
        self._machine_at_start = machine_busy_s()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self.cpu_s = {name: used - self._cpu_at_start[name] for name, used in self._cpu().items()}
        self.cpu_s["machine"] = machine_busy_s() - self._machine_at_start

    def _cpu(self) -> dict[str, float]:
        used = dict.fromkeys(self._procs, 0.0)
        for name, group in self._procs.items():
            for proc in group:
                with contextlib.suppress(psutil.Error):
                    times = proc.cpu_times()
                    used[name] += times.user + times.system
        return used

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def _sample(self) -> None:
        for name, group in self._procs.items():
            for proc in group:
                with contextlib.suppress(psutil.Error):
                    self.peak_mb[name] = max(self.peak_mb[name], proc.memory_info().rss / 1e6)
