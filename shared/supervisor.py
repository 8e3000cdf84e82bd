"""Children of `llamaq up`: their output passed through, and a plain account of any that exits unasked."""

import signal
import subprocess
import sys
import threading
from collections import deque
from typing import IO

TAIL_LINES = 15

# What a fatal signal most likely means for a llamaq process, and what to do about it.
SIGNAL_HINTS = {
    signal.SIGILL: (
        "likely cause: llama.cpp was compiled with instructions this CPU or its kernel refuses (most often AMX on "
        "a VM that advertises it, or a library built on another machine). Rebuild it for this machine:\n"
        "    {python} -m worker.engine_install"
    ),
    signal.SIGKILL: "likely cause: the kernel's out-of-memory killer (see `dmesg`), or someone ran kill -9.",
    signal.SIGSEGV: "likely cause: a crash inside llama.cpp; the lines above show what it was doing.",
    signal.SIGBUS: "likely cause: the model file changed or was truncated while it was mapped.",
}


def exit_words(returncode: int) -> str:
    """`exited with code 1`, or `was killed by SIGILL (signal 4)`."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "an unknown signal"
        return f"was killed by {name} (signal {-returncode})"
    return f"exited with code {returncode}"


class Child:
    """One part of the stack (`worker`, `api`) in a session of its own, its last lines kept for the report."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], out: IO[bytes] | None = None) -> None:
        self.name = name
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        # A new session: Ctrl-C reaches `up`, which then stops each child in order.
        self.process = subprocess.Popen(
            argv,
            env={**env, "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._out = out if out is not None else sys.stdout.buffer
        self._reader = threading.Thread(target=self._relay, name=f"{name}-output", daemon=True)
        self._reader.start()

    def _relay(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.tail.append(line.decode(errors="replace").rstrip())
            self._out.write(line)
            self._out.flush()

    def poll(self) -> int | None:
        return self.process.poll()

    def report(self, phase: str) -> str:
        """Which part ended, how, its last lines, and for a fatal signal the likely cause and the fix."""
        self._reader.join(timeout=2)  # the last lines it wrote before it went
        returncode = self.process.poll()
        how = "is still running" if returncode is None else exit_words(returncode)
        lines = [f"llamaq: the {self.name} {how} {phase}"]
        if self.tail:
            lines.append(f"llamaq: last lines of the {self.name}'s log:")
            lines += [f"    | {line}" for line in self.tail]
        hints = {-int(sig): hint for sig, hint in SIGNAL_HINTS.items()}
        if returncode is not None and (hint := hints.get(returncode)):
            lines.append("llamaq: " + hint.format(python=sys.executable))
        return "\n".join(lines)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> None:
        try:
            self.process.wait(max(0.1, timeout))
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(timeout=2)
        if self.process.stdout:
            self.process.stdout.close()
