"""Which weights a worker serves: the model file as given, or a requantized copy that llama.cpp runs faster.

The choice is one of `WEIGHTS`:
- `auto`: the bundled SmolLM2 as `AUTO_BUNDLED`; a user's own GGUF as given. Q8_0 keeps the shipped Q4_1's
  perplexity and is faster at prefill (2.2x), decode and batched decode (1.2x); Q4_0 is faster still but loses
  quality (perplexity +21 %), see bench/results/weights.md. If the copy cannot be made, `auto` serves the file as given.
- `as-is`: the file as given.
- `q8_0` / `q4_0`: the file requantized once to that type and cached. On x86 llama.cpp has no multi-row
  kernel for Q4_1 (the bundled file's type); Q8_0 runs on tinyBLAS GEMM and Q4_0 is repacked into CPU_REPACK.

Copies live in `$XDG_CACHE_HOME/llamaq/models` (default `~/.cache/llamaq/models`), named after the
source's identity and the target type. Each is written to a temporary file and renamed into place, so
workers converting at the same time waste work at worst, and a reader never sees half a file.
"""

import hashlib
import logging
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)

WEIGHTS = ("auto", "as-is", "q8_0", "q4_0")
AUTO_BUNDLED = "q8_0"
HEAD_BYTES = 4 << 20  # hashed with size and mtime: a changed file changes its name in the cache
STALE_SECONDS = 3600  # a temporary file this old belongs to a conversion that died

Quantize = Callable[[Path, Path, str], None]


def default_cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "llamaq" / "models"


def source_key(source: Path) -> str:
    """Changes with the file's size, mtime, first MBs and the llama.cpp version that would convert it."""
    import llama_cpp

    stat = source.stat()
    digest = hashlib.sha256(f"{stat.st_size}:{stat.st_mtime_ns}:{llama_cpp.__version__}:".encode())
    with source.open("rb") as file:
        digest.update(file.read(HEAD_BYTES))
    return digest.hexdigest()[:16]


def llama_quantize(source: Path, target: Path, kind: str) -> None:
    """Requantize with llama.cpp, all cores; raises if llama.cpp reports a failure."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = {"q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0, "q4_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0}[kind]
    params.allow_requantize = True
    params.nthread = os.cpu_count() or 1
    chatter = logging.getLogger("llama-cpp-python")  # llama.cpp's log, as llama-cpp-python filters it
    level = chatter.level
    chatter.setLevel(logging.ERROR)  # a line per tensor otherwise; errors still show
    try:
        status = llama_cpp.llama_model_quantize(str(source).encode(), str(target).encode(), params)
    finally:
        chatter.setLevel(level)
    if status != 0:
        raise RuntimeError(f"llama.cpp could not convert {source.name} to {kind} (status {status})")


def _drop_stale(cache_dir: Path, name: str) -> None:
    for temp in cache_dir.glob(f".{name}.*.tmp"):
        try:
            if time.time() - temp.stat().st_mtime > STALE_SECONDS:
                temp.unlink()
        except FileNotFoundError:
            pass  # its owner finished or cleaned it meanwhile


def convert(source: Path, kind: str, cache_dir: Path, quantize: Quantize = llama_quantize) -> Path:
    """The cached `kind` copy of `source`, converting it first if there is none."""
    if kind not in ("q8_0", "q4_0"):
        raise ValueError(f"cannot convert to {kind!r}: expected q8_0 or q4_0")
    name = f"{source.stem}.{source_key(source)}.{kind}.gguf"
    target = cache_dir / name
    if target.is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    _drop_stale(cache_dir, name)
    temp = cache_dir / f".{name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
    started = time.monotonic()
    try:
        quantize(source, temp, kind)
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    logger.info("weights converted", extra={"target": str(target), "seconds": round(time.monotonic() - started, 1)})
    return target


def served_weights(path: Path, requested: str, bundled: bool, cache_dir: Path | None = None) -> Path:
    """The file a worker loads for `requested` (one of `WEIGHTS`); `bundled` is true for the shipped model."""
    if requested not in WEIGHTS:
        raise ValueError(f"unknown weights {requested!r}: expected one of {', '.join(WEIGHTS)}")
    kind = (AUTO_BUNDLED if bundled else "as-is") if requested == "auto" else requested
    if kind == "as-is":
        return path
    try:
        return convert(path, kind, cache_dir or default_cache_dir())
    except (OSError, RuntimeError):
        if requested != "auto":
            raise
        # `auto` only promises the fastest format that can be had: the same model as given still serves
        logger.warning(
            "weights not converted, serving the file as given", extra={"model_path": str(path)}, exc_info=True
        )
        return path
