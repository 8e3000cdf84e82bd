"""Worker memory by slot count: RSS warm and after a load; KV bytes per slot from RSS and from the model shape."""

import asyncio
import time
from pathlib import Path
from typing import Any

import psutil

from bench.capacity_config import DISTINCT, Plan, body
from bench.capacity_field import MODEL, Layout, llamaq
from bench.client import load_each
from bench.procs import RssSampler
from bench.report import Row

KV_BYTES = 2  # f16 K and V, llama.cpp's default cache type


def kv_bytes_per_token(model_path: Path) -> int:
    """layers x (K and V) x KV heads x head dim x 2 bytes, from the GGUF's metadata."""
    from llama_cpp import Llama

    llama = Llama(model_path=str(model_path), vocab_only=True, verbose=False)
    meta = llama.metadata
    arch = meta["general.architecture"]
    layers, heads = int(meta[f"{arch}.block_count"]), int(meta[f"{arch}.attention.head_count"])
    kv_heads = int(meta.get(f"{arch}.attention.head_count_kv", heads))
    head_dim = int(meta.get(f"{arch}.attention.key_length", int(meta[f"{arch}.embedding_length"]) // heads))
    llama.close()
    return layers * 2 * kv_heads * head_dim * KV_BYTES


def _rss(pid: int) -> tuple[float, float]:
    """RSS and its anonymous part (RSS minus file-backed pages), MB."""
    info = psutil.Process(pid).memory_info()
    return info.rss / 1e6, (info.rss - info.shared) / 1e6


def _one(plan: Plan, slots: int, weights: Path, scratch: Path) -> Row:
    with llamaq(plan, Layout(1, 1, slots), weights, scratch / f"memory-{slots}") as contestant:
        (pid,) = contestant.pids["worker"]
        time.sleep(1.0)
        idle, _ = _rss(pid)
        clients = max(plan.memory_slots)

        def bodies(who: int, _k: int) -> dict[str, Any]:
            return body(plan, MODEL, DISTINCT, who, False)

        with RssSampler({"worker": [pid]}) as sampler:
            streams, _ = asyncio.run(load_each(contestant.url, bodies, clients, 1))
        after, anon = _rss(pid)
    failed = sum(not s.ok for s in streams)
    return {"slots": slots, "idle_mb": idle, "peak_mb": sampler.peak_mb["worker"], "after_mb": after,
            "anon_after_mb": anon, "failed": failed}  # fmt: skip


def measure(plan: Plan, weights: Path, scratch: Path) -> list[Row]:
    """One worker (1 thread) per slot count, one at a time; KV per slot = RSS growth over 1 slot / extra slots."""
    rows = [_one(plan, slots, weights, scratch) for slots in plan.memory_slots]
    shape_mb = kv_bytes_per_token(weights) * plan.n_ctx / 1e6
    base = rows[0]
    for row in rows:
        extra = row["slots"] - base["slots"]
        row["kv_rss_mb"] = (row["after_mb"] - base["after_mb"]) / extra if extra else None
        row["kv_shape_mb"] = shape_mb
    return rows
