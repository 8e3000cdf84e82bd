"""The llama.cpp library installed here: built by llamaq's installer, with no instruction this machine refuses."""

import importlib.metadata
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.stack import ROOT
from worker import llamalib
from worker.engine_build import llama_requirement

pytestmark = pytest.mark.integration

OBJDUMP = shutil.which("objdump")
# AMX tile instructions: never safe to ship (a CPU may advertise AMX that its kernel refuses).
AMX = re.compile(r"\b(ldtilecfg|sttilecfg|tilezero|tileloadd|tileloaddt1|tilestored|tilerelease|tdp\w+)\b")
ZMM = re.compile(r"%zmm\d+")


def cpu_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def disassembly(path: Path) -> str:
    assert OBJDUMP is not None
    return subprocess.run(
        [OBJDUMP, "-d", "--no-show-raw-insn", str(path)], capture_output=True, text=True, timeout=120, check=True
    ).stdout


def test_the_installed_engine_is_the_pinned_version_built_by_the_installer() -> None:
    lib = llamalib.library_dir()
    stamp = llamalib.build_stamp(lib)
    assert stamp is not None, f"llama-cpp-python was not installed by `python -m worker.engine_install` ({lib})"
    assert stamp["requirement"] == llama_requirement(ROOT / "pyproject.toml")
    assert stamp["requirement"] == f"llama-cpp-python=={importlib.metadata.version('llama-cpp-python')}"


@pytest.mark.skipif(OBJDUMP is None, reason="objdump not installed (binutils)")
def test_no_library_holds_an_instruction_this_machine_cannot_run() -> None:
    lib = llamalib.library_dir()
    libraries = sorted(path for path in lib.glob("*.so") if path.is_file())
    assert any(path.name.startswith("libggml-cpu") for path in libraries), libraries
    variants = [path for path in libraries if path.name.startswith("libggml-cpu-")]
    for path in libraries:
        code = disassembly(path)
        assert not AMX.search(code), f"{path.name} holds AMX instructions"
        # A runtime-dispatch build ships wider variants on purpose; ggml loads only one this CPU runs.
        if not variants and "avx512f" not in cpu_flags():
            assert not ZMM.search(code), f"{path.name} uses AVX-512 on a CPU without it"
