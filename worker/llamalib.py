"""The llama.cpp library this worker runs: how it was built, which CPU backend it loads, what that backend uses."""

import _ctypes
import ctypes
import json
import logging
import sys
from pathlib import Path
from typing import Any

from worker.engine_build import STAMP, UNSAFE_VARIANTS

logger = logging.getLogger(__name__)


def library_dir() -> Path:
    import llama_cpp

    return Path(llama_cpp.__file__).resolve().parent / "lib"


def build_stamp(lib: Path) -> dict[str, Any] | None:
    path = lib / STAMP
    return json.loads(path.read_text()) if path.exists() else None


def _score(variant: Path) -> int:
    handle = ctypes.CDLL(str(variant))
    try:
        score = handle.ggml_backend_score
        score.restype = ctypes.c_int
        return int(score())
    finally:
        _ctypes.dlclose(handle._handle)  # as ggml does: each candidate is only asked its score


def load_cpu_backend(lib: Path, only: str | None = None) -> str | None:
    """A runtime-dispatch build: load the best CPU variant this CPU runs, never an unsafe one; returns its name.

    Must run before the first model load: llama.cpp loads backends itself only while none is loaded, and it
    would look next to the Python executable, not here. A build with its CPU backend linked in returns None.
    """
    variants = [
        path
        for path in sorted(lib.glob("libggml-cpu-*.so"))
        if not any(path.name == f"libggml-cpu-{name}.so" for name in UNSAFE_VARIANTS)
    ]
    if only is not None:  # a benchmark's choice: this variant and no other
        variants = [path for path in variants if path.name == f"libggml-cpu-{only}.so"]
    if not variants:
        return None
    scored = [(score, path) for path in variants if (score := _score(path)) > 0]
    if not scored:
        raise RuntimeError(f"no CPU variant in {lib} runs on this CPU")
    best = max(scored)[1]
    # Through libllama's own handle: the wheel holds copies (not links) of libggml, and a copy opened by path
    # would be a second ggml with a registry of its own.
    from llama_cpp.llama_cpp import _lib

    load = _lib.ggml_backend_load
    load.restype, load.argtypes = ctypes.c_void_p, [ctypes.c_char_p]
    if not load(str(best).encode()):
        raise RuntimeError(f"llama.cpp could not load {best}")
    return best.name.removeprefix("libggml-cpu-").removesuffix(".so")


def report(lib: Path, variant: str | None) -> dict[str, Any]:
    """What the start-up log says about the engine: version, build, CPU variant, features llama.cpp uses."""
    import llama_cpp

    stamp = build_stamp(lib)
    return {
        "llama_cpp_python": llama_cpp.__version__,
        "build": f"{stamp['kind']} {stamp['key']}" if stamp else "not built by worker.engine_install",
        "cpu_variant": variant or "built in",
        "system_info": llama_cpp.llama_print_system_info().decode(errors="replace").strip(),
    }


def prepare() -> dict[str, Any]:
    """Load the CPU backend and describe the engine; logs a warning for a library llamaq did not build."""
    lib = library_dir()
    facts = report(lib, load_cpu_backend(lib))
    logger.info("llama.cpp engine", extra=facts)
    if "not built" in facts["build"]:
        logger.warning(
            "llama-cpp-python was built outside llamaq's installer; if this worker dies with SIGILL, run: %s",
            f"{sys.executable} -m worker.engine_install",
        )
    return facts
