"""How llama-cpp-python is compiled here: flags that never emit an instruction this machine cannot run.

Standard library only: it runs from a fresh checkout before any dependency is installed.
"""

import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

# AMX: a CPU may advertise it while its kernel refuses the tile state to ggml's worker threads (XFD
# permission is requested on the main thread only, llama.cpp PR #26954), so AMX code dies with SIGILL.
# ggml's AMX kernels only cover a few weight types; leaving them out costs little and is always safe.
UNSAFE_ISA = ("amx-tile", "amx-int8", "amx-bf16", "amx-fp16", "amx-complex")
# The runtime-dispatch variants that would use AMX (ggml picks them whenever the CPU advertises it).
UNSAFE_VARIANTS = ("sapphirerapids",)
COMMON_ARGS = ("-DLLAVA_BUILD=OFF",)  # the worker needs no multimodal library; saves ~15% of the build
STAMP = "llamaq-build.json"


@dataclass(frozen=True)
class Build:
    """One way to build the engine: `native` (tuned to this CPU) or `portable` (ggml's runtime CPU dispatch)."""

    kind: str
    requirement: str
    cmake_args: tuple[str, ...]
    machine: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Changes with anything that changes the library: version, flags, compiler, Python, and the CPU if native."""
        facts = {"kind": self.kind, "requirement": self.requirement, "cmake_args": self.cmake_args, **self.machine}
        return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:20]

    def stamp(self, seconds: float, removed: list[str]) -> dict[str, object]:
        return {
            "key": self.key,
            "kind": self.kind,
            "requirement": self.requirement,
            "cmake_args": list(self.cmake_args),
            "build_seconds": round(seconds),
            "removed_variants": removed,
        }


def llama_requirement(pyproject: Path | None = None) -> str:
    """The llama-cpp-python pin of the `worker` extra: pyproject.toml in a checkout, else the installed metadata."""
    import tomllib

    path = pyproject or Path(__file__).resolve().parent.parent / "pyproject.toml"
    if path.exists():
        extras = tomllib.loads(path.read_text())["project"]["optional-dependencies"]["worker"]
    else:
        from importlib.metadata import requires

        extras = [req.split(";")[0].strip() for req in requires("llamaq") or [] if 'extra == "worker"' in req]
    return next(req for req in extras if req.replace("_", "-").startswith("llama-cpp-python"))


def compiler_accepts(flag: str, compiler: str) -> bool:
    probe = subprocess.run(
        [compiler, "-Werror", flag, "-x", "c", "-c", "-o", os.devnull, "-"],
        input=b"",
        capture_output=True,
        timeout=60,
    )
    return probe.returncode == 0


def compiler_version(compiler: str) -> str:
    try:
        out = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=60).stdout
    except OSError:
        return "unknown"
    return out.splitlines()[0] if out else "unknown"


def cpu_identity(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict[str, str]:
    """What a `-march=native` library depends on: the CPU's model and feature flags."""
    fields: dict[str, str] = {}
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() in ("model name", "flags") and name.strip() not in fields:
                fields[name.strip()] = value.strip()
    flags = " ".join(sorted(fields.get("flags", "").split()))
    return {
        "cpu": fields.get("model name", platform.processor()),
        "cpu_flags": hashlib.sha256(flags.encode()).hexdigest(),
    }


def no_unsafe_isa(compiler: str) -> list[str]:
    """`-mno-…` for each unsafe extension the compiler knows (one that does not know it cannot emit it)."""
    return [f"-mno-{isa}" for isa in UNSAFE_ISA if compiler_accepts(f"-mno-{isa}", compiler)]


def _flags_args(flags: list[str]) -> list[str]:
    if not flags:
        return []
    joined = " ".join(flags)
    return [f"-DCMAKE_C_FLAGS={joined}", f"-DCMAKE_CXX_FLAGS={joined}"]


def plan(kind: str, requirement: str, extra_args: str = "") -> Build:
    """The build for `kind`; `extra_args` (the user's CMAKE_ARGS, e.g. a BLAS backend) come last."""
    compiler = os.environ.get("CC", "cc")
    machine = {
        "python": sys.implementation.cache_tag or sys.version,
        "arch": platform.machine(),
        "compiler": compiler_version(compiler),
    }
    if kind == "native":
        args = ["-DGGML_NATIVE=ON", *_flags_args(no_unsafe_isa(compiler))]
        machine |= cpu_identity()
    elif kind == "portable":
        args = ["-DGGML_NATIVE=OFF", "-DGGML_BACKEND_DL=ON", "-DGGML_CPU_ALL_VARIANTS=ON"]
    else:
        raise ValueError(f"unknown build kind {kind!r}")
    return Build(kind, requirement, (*args, *COMMON_ARGS, *shlex.split(extra_args)), machine)


def cmake_args_env(build: Build) -> str:
    """CMAKE_ARGS as scikit-build-core reads it (split like a shell)."""
    return shlex.join(build.cmake_args)
