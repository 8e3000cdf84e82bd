"""The README's Python examples, run as a user would paste them, against a running stack."""

import contextlib
import io
import re

import pytest

from tests.stack import ROOT, Stack

pytestmark = pytest.mark.integration

README = (ROOT / "README.md").read_text()
# The address the README's examples use: `llamaq up`'s default.
DEFAULT_BASE = "http://127.0.0.1:8000/v1"


def example(name: str) -> str:
    """The Python block after `<!-- example:<name> -->`."""
    match = re.search(rf"<!-- example:{name} -->\s*```python\n(.*?)```", README, re.S)
    assert match, f"README has no example:{name} block"
    return match.group(1)


def run_example(name: str, stack: Stack) -> str:
    code = example(name)
    assert DEFAULT_BASE in code
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code.replace(DEFAULT_BASE, f"{stack.base_url}/v1"), f"README:{name}", "exec"), {})
    return printed.getvalue()


def test_the_tool_calling_example_runs_the_whole_loop(stack: Stack) -> None:
    """It iterates over the first answer's calls (a TypeError without them) and prints the final answer."""
    assert run_example("tools", stack).strip()


def test_the_responses_example_continues_a_conversation_and_polls_a_background_one(stack: Stack) -> None:
    printed = run_example("responses", stack).splitlines()
    assert "".join(printed).strip() and {"completed", "incomplete"} & set(printed)
