"""`llamaq up`'s account of a child that exits: which part, how, its last lines, and for SIGILL the fix."""

import io
import os
import signal
import sys

import pytest

from shared.supervisor import TAIL_LINES, Child, exit_words
from tests.probes import poll


def run_child(name: str, code: str) -> tuple[Child, io.BytesIO]:
    out = io.BytesIO()
    child = Child(name, [sys.executable, "-c", code], dict(os.environ), out=out)
    poll(lambda: child.poll() is not None, timeout=30)
    assert child.poll() is not None, "the child did not exit"
    return child, out


def test_a_child_killed_by_sigill_is_named_with_its_log_cause_and_fix() -> None:
    code = "import os, signal; print('loading model'); print('prompt pass'); os.kill(os.getpid(), signal.SIGILL)"
    child, out = run_child("worker", code)
    report = child.report("during start-up")
    lines = report.splitlines()
    assert lines[0] == "llamaq: the worker was killed by SIGILL (signal 4) during start-up"
    assert "    | loading model" in lines and "    | prompt pass" in lines
    assert "instructions this CPU or its kernel refuses" in report
    assert f"    {sys.executable} -m worker.engine_install" in lines
    assert out.getvalue() == b"loading model\nprompt pass\n", "the child's output is passed through"
    child.wait(5)


def test_an_exit_code_is_named_without_a_signal_hint() -> None:
    child, _ = run_child("api", "import sys; print('[Errno 98] address already in use'); sys.exit(3)")
    report = child.report("while serving")
    assert report.splitlines()[0] == "llamaq: the api exited with code 3 while serving"
    assert "[Errno 98] address already in use" in report
    assert "likely cause" not in report
    child.wait(5)


def test_only_the_last_lines_are_kept() -> None:
    child, _ = run_child("worker", f"for i in range({TAIL_LINES + 10}): print('line', i)")
    report = child.report("during start-up")
    assert f"| line {TAIL_LINES + 9}" in report and "| line 9\n" not in report and "| line 10" in report
    child.wait(5)


@pytest.mark.parametrize(
    ("returncode", "words"),
    [
        (0, "exited with code 0"),
        (-signal.SIGKILL, "was killed by SIGKILL (signal 9)"),
        (-signal.SIGSEGV, "was killed by SIGSEGV (signal 11)"),
        (-77, "was killed by an unknown signal (signal 77)"),
    ],
)
def test_exit_words(returncode: int, words: str) -> None:
    assert exit_words(returncode) == words
