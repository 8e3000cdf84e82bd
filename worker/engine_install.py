"""`python -m worker.engine_install`: build llama-cpp-python safely for this machine, keep the wheel, install it.

pip keys its wheel cache on the sdist alone, so a wheel once built with other flags (say, with AMX on a CPU
whose kernel refuses it) would be reused whatever CMAKE_ARGS says. This builds with pip's cache off, keeps
each wheel in llamaq's own cache under a key of everything that shapes the library, and installs that file.
Standard library only: it runs from a fresh checkout before any dependency is installed.
"""

import argparse
import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from importlib.util import find_spec
from pathlib import Path

from worker.engine_build import STAMP, UNSAFE_VARIANTS, Build, cmake_args_env, llama_requirement, plan

LIB_DIR = "llama_cpp/lib/"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "llamaq" / "wheels"


def installed_stamp() -> dict[str, object] | None:
    """The stamp of the llama-cpp-python installed in this environment, if llamaq's installer built it."""
    spec = find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "lib" / STAMP
    return json.loads(path.read_text()) if path.exists() else None


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def finish_wheel(built: Path, out: Path, build: Build, seconds: float) -> Path:
    """Copy the wheel with ggml's CPU variants beside libllama, unsafe ones left out, and a stamp added.

    ggml looks for its runtime-dispatch CPU variants next to the Python executable; the worker loads them from
    llama_cpp/lib instead (worker/llamalib.py), so they go there.
    """
    removed: list[str] = []
    target = out / built.name
    with zipfile.ZipFile(built) as source, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as wheel:
        record_name = next(n for n in source.namelist() if n.endswith(".dist-info/RECORD"))
        records: list[str] = []
        written: set[str] = set()
        for info in source.infolist():
            base = info.filename.rsplit("/", 1)[-1]
            if info.filename == record_name or info.is_dir():
                continue
            if base.startswith("libggml-cpu-") and any(f"-{v}." in base for v in UNSAFE_VARIANTS):
                removed.append(base)
                continue
            if base.startswith("libggml-cpu-") and not info.filename.startswith(LIB_DIR):
                info.filename = LIB_DIR + base  # a runtime-dispatch variant, installed by ggml outside the package
            if info.filename in written:
                continue
            written.add(info.filename)
            data = source.read(info)
            wheel.writestr(info, data)
            records.append(_record_line(info.filename, data))
        stamp = json.dumps(build.stamp(seconds, removed), indent=1).encode()
        wheel.writestr(LIB_DIR + STAMP, stamp)
        records += [_record_line(LIB_DIR + STAMP, stamp), f"{record_name},,"]
        wheel.writestr(record_name, "\n".join(records) + "\n")
    return target


def build_wheel(build: Build, out: Path) -> Path:
    """Compile with pip's cache off (it would hand back a wheel built with other flags) and finish the wheel."""
    env = dict(os.environ, CMAKE_ARGS=cmake_args_env(build))
    env.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 1))
    print(f"llamaq: building {build.requirement} ({build.kind}): CMAKE_ARGS={env['CMAKE_ARGS']}", flush=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as scratch:
        pip = [sys.executable, "-m", "pip", "wheel", "--no-cache-dir", "--no-deps", "--wheel-dir", scratch]
        subprocess.run([*pip, build.requirement], env=env, check=True)
        built = next(Path(scratch).glob("llama_cpp_python-*.whl"))
        out.mkdir(parents=True, exist_ok=True)
        wheel = finish_wheel(built, out, build, time.monotonic() - started)
    print(f"llamaq: built {wheel.name} in {time.monotonic() - started:.0f} s; kept in {out}", flush=True)
    return wheel


def cached_wheel(build: Build, rebuild: bool) -> Path:
    folder = cache_dir() / build.key
    found = sorted(folder.glob("llama_cpp_python-*.whl"))
    if found and not rebuild:
        print(f"llamaq: reusing {found[-1]} (built before with the same flags)", flush=True)
        return found[-1]
    shutil.rmtree(folder, ignore_errors=True)
    return build_wheel(build, folder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker.engine_install", description=__doc__.splitlines()[0])
    parser.add_argument("--portable", action="store_true", help="ggml's runtime CPU dispatch (images, fleets)")
    parser.add_argument("--wheel-dir", type=Path, help="only build the wheel into this folder (no install)")
    parser.add_argument("--rebuild", action="store_true", help="build again even if a wheel with this key exists")
    parser.add_argument("--requirement", help="what to build (default: the `worker` extra's llama-cpp-python pin)")
    args = parser.parse_args(argv)
    kind = "portable" if args.portable else "native"
    build = plan(kind, args.requirement or llama_requirement(), os.environ.get("CMAKE_ARGS", ""))
    if args.wheel_dir:
        args.wheel_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy2(cached_wheel(build, args.rebuild), args.wheel_dir)
        return 0
    current = installed_stamp()
    if current and current.get("key") == build.key and not args.rebuild:
        print(f"llamaq: {build.requirement} ({build.kind}) is installed and up to date", flush=True)
        return 0
    wheel = cached_wheel(build, args.rebuild)
    install = [sys.executable, "-m", "pip", "install", "--no-deps", "--force-reinstall", str(wheel)]
    subprocess.run(install, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
