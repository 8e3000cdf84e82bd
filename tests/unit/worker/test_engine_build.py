"""The llama.cpp build plan: no unsafe ISA, a key that tracks every input, and the finished portable wheel."""

import base64
import hashlib
import json
import shlex
import zipfile
from pathlib import Path

import pytest

from tests.stack import ROOT
from worker import engine_build, engine_install
from worker.engine_build import STAMP, Build, cmake_args_env, cpu_identity, llama_requirement, plan


def fake_compiler(tmp_path: Path, knows_amx: bool) -> str:
    """A `cc` that accepts every flag, or refuses the AMX ones like gcc before 11."""
    script = tmp_path / "cc"
    refuse = 'case "$*" in *-mno-amx*) exit 1;; esac' if not knows_amx else ""
    script.write_text(f'#!/bin/sh\n[ "$1" = --version ] && {{ echo "fake cc 1.0"; exit 0; }}\n{refuse}\nexit 0\n')
    script.chmod(0o755)
    return str(script)


def test_the_requirement_is_the_worker_extras_pin() -> None:
    pin = llama_requirement(ROOT / "pyproject.toml")
    assert pin.startswith("llama-cpp-python==") and pin in (ROOT / "pyproject.toml").read_text()


def test_native_build_turns_off_amx_wherever_the_compiler_knows_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CC", fake_compiler(tmp_path, knows_amx=True))
    build = plan("native", "llama-cpp-python==0.3.36")
    args = shlex.split(cmake_args_env(build))
    assert args[0] == "-DGGML_NATIVE=ON" and "-DLLAVA_BUILD=OFF" in args
    no_amx = " ".join(f"-mno-{isa}" for isa in engine_build.UNSAFE_ISA)
    assert f"-DCMAKE_C_FLAGS={no_amx}" in args and f"-DCMAKE_CXX_FLAGS={no_amx}" in args
    assert build.machine["compiler"] == "fake cc 1.0" and "cpu_flags" in build.machine


def test_a_compiler_without_amx_gets_no_amx_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CC", fake_compiler(tmp_path, knows_amx=False))
    args = shlex.split(cmake_args_env(plan("native", "llama-cpp-python==0.3.36")))
    assert not [arg for arg in args if "amx" in arg], "a compiler that does not know AMX cannot emit it"


def test_portable_build_is_runtime_dispatch_and_cpu_independent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CC", fake_compiler(tmp_path, knows_amx=True))
    build = plan("portable", "llama-cpp-python==0.3.36", extra_args="-DGGML_BLAS=ON")
    assert build.cmake_args[:3] == ("-DGGML_NATIVE=OFF", "-DGGML_BACKEND_DL=ON", "-DGGML_CPU_ALL_VARIANTS=ON")
    assert build.cmake_args[-1] == "-DGGML_BLAS=ON", "the user's CMAKE_ARGS come last"
    assert "cpu_flags" not in build.machine, "a portable wheel serves every CPU"


def test_the_key_changes_with_each_input() -> None:
    base = Build("native", "llama-cpp-python==0.3.36", ("-DGGML_NATIVE=ON",), {"cpu_flags": "a"})
    variants = [
        Build("portable", base.requirement, base.cmake_args, base.machine),
        Build("native", "llama-cpp-python==0.3.37", base.cmake_args, base.machine),
        Build("native", base.requirement, ("-DGGML_NATIVE=ON", "-DGGML_BLAS=ON"), base.machine),
        Build("native", base.requirement, base.cmake_args, {"cpu_flags": "b"}),
    ]
    assert len({base.key, *(build.key for build in variants)}) == 5
    assert base.key == Build("native", base.requirement, base.cmake_args, {"cpu_flags": "a"}).key


def test_cpu_identity_depends_on_the_flags_not_their_order(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.write_text(
        "model name\t: Xeon\nflags\t\t: avx2 amx_tile fma\n\nmodel name\t: Xeon\nflags\t\t: avx2 amx_tile fma\n"
    )
    two.write_text("model name\t: Xeon\nflags\t\t: fma avx2 amx_tile\n")
    assert cpu_identity(one) == cpu_identity(two)
    assert cpu_identity(one)["cpu"] == "Xeon"


def portable_wheel(path: Path) -> Path:
    """A wheel laid out like llama-cpp-python's runtime-dispatch build: variants installed by ggml under bin/."""
    files = {
        "llama_cpp/__init__.py": b"",
        "llama_cpp/lib/libllama.so": b"llama",
        "llama_cpp/lib/libggml.so": b"ggml",
        "lib/libggml.so": b"ggml",
        "bin/libggml-cpu-haswell.so": b"haswell",
        "bin/libggml-cpu-zen4.so": b"zen4",
        "bin/libggml-cpu-sapphirerapids.so": b"amx",
        "llama_cpp_python-0.3.36.dist-info/METADATA": b"Name: llama_cpp_python\n",
        "llama_cpp_python-0.3.36.dist-info/RECORD": b"stale\n",
    }
    with zipfile.ZipFile(path, "w") as wheel:
        for name, data in files.items():
            wheel.writestr(name, data)
    return path


def test_finished_wheel_keeps_safe_variants_beside_libllama_with_a_valid_record(tmp_path: Path) -> None:
    built = portable_wheel(tmp_path / "llama_cpp_python-0.3.36-py3-none-linux_x86_64.whl")
    build = Build("portable", "llama-cpp-python==0.3.36", ("-DGGML_BACKEND_DL=ON",))
    out = tmp_path / "out"
    out.mkdir()
    finished = engine_install.finish_wheel(built, out, build, seconds=12.3)
    with zipfile.ZipFile(finished) as wheel:
        names = set(wheel.namelist())
        assert {"llama_cpp/lib/libggml-cpu-haswell.so", "llama_cpp/lib/libggml-cpu-zen4.so"} <= names
        assert not [name for name in names if "sapphirerapids" in name or name.startswith("bin/")]
        stamp = json.loads(wheel.read(f"llama_cpp/lib/{STAMP}"))
        assert stamp["key"] == build.key and stamp["removed_variants"] == ["libggml-cpu-sapphirerapids.so"]
        record = wheel.read("llama_cpp_python-0.3.36.dist-info/RECORD").decode().splitlines()
        listed = {line.split(",")[0] for line in record}
        assert listed == names
        for line in record:
            name, digest, size = line.split(",")
            if name.endswith("RECORD"):
                assert digest == size == ""
                continue
            data = wheel.read(name)
            expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert digest == f"sha256={expected}" and int(size) == len(data)
