"""Embeddings batched against one at a time: in the engine, and through the whole service.

`python -m bench.embeddings [--rounds 5] [--texts 64] [--requests 48] [--clients 8] [--out bench/results/embeddings.md]`

- engine: the bundled all-MiniLM-L6-v2 GGUF in one `Embedder` (one thread), `--texts` sentences embedded in one
  call (packed `PACK_TOKENS` tokens a decode, as a worker does) against one decode a sentence; also packs of
  other sizes, which is how `PACK_TOKENS` was chosen; texts per CPU-second.
- service: redis-server, the API and two embedding workers of the same model under two names, one with
  `LLAMAQ_SLOTS=8` (the jobs waiting together embedded in one batch) and one with `LLAMAQ_SLOTS=1` (one job
  at a time); `--clients` clients send `--requests` one-text requests each round; requests/s.

Rounds alternate the contenders' order; the report gives medians and the ratio of medians.
"""

import argparse
import datetime
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from bench.procs import spawn, stop, wait_until
from bench.stack import private_redis, running_llamaq
from worker import llamalib
from worker.bert_gguf import bundled_embedding_zip, converted
from worker.embed_model import PACK_TOKENS
from worker.embedder import Embedder

SUBJECTS = ["The cat", "A kitten", "The committee", "Our quarterly revenue", "The old lighthouse", "A tired runner"]
PASSES = 3  # engine passes over the texts in one measurement
ONE = "one at a time"
VERBS = ["sits on the mat", "grew by twelve percent", "waited for the storm", "finished the race", "was repainted"]


def sentences(count: int) -> list[str]:
    return [f"{SUBJECTS[i % len(SUBJECTS)]} {VERBS[i % len(VERBS)]} (case {i})." for i in range(count)]


def engine_rounds(texts: list[str], rounds: int) -> dict[str, list[float]]:
    import llama_cpp

    llamalib.prepare()
    path = converted(bundled_embedding_zip())
    llama = llama_cpp.Llama(
        model_path=str(path), embedding=True, n_ctx=512, n_batch=512, n_ubatch=512, n_threads=1, verbose=False
    )
    # Packs of 1 token put every input in a decode of its own: one at a time.
    packs = {ONE: 1, **{f"{size} tokens a decode" + (" (worker)" if size == PACK_TOKENS else ""): size for size in
             (32, PACK_TOKENS, 128, 256, 512)}}  # fmt: skip
    embedders = {name: Embedder(llama, per_input=512, pack_tokens=size) for name, size in packs.items()}
    tokens = [llama.tokenize(text.encode()) for text in texts]
    embedders[ONE].embed(tokens)  # warm
    results: dict[str, list[float]] = {name: [] for name in packs}
    for round_ in range(rounds):
        for name in list(packs) if round_ % 2 == 0 else list(reversed(packs)):
            # CPU seconds of this process: less moved by neighbours on a shared machine than the wall clock.
            start = time.process_time()
            for _ in range(PASSES):
                embedders[name].embed(tokens)
            results[name].append(PASSES * len(texts) / max(time.process_time() - start, 1e-9))
    llama.close()
    return results


def service_round(base_url: str, model: str, texts: list[str], clients: int) -> float:
    def send(text: str) -> None:
        reply = httpx.post(f"{base_url}/v1/embeddings", json={"model": model, "input": text}, timeout=120)
        reply.raise_for_status()

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(send, texts))
    return len(texts) / (time.perf_counter() - start)


def service_rounds(texts: list[str], rounds: int, clients: int, logs: Path) -> dict[str, list[float]]:
    names = {"LLAMAQ_SLOTS=8: waiting jobs embedded together": ("minilm-slots8", "8"), ONE: ("minilm-slots1", "1")}
    results: dict[str, list[float]] = {name: [] for name in names}
    with private_redis(logs / "redis") as redis, running_llamaq(redis.url, logs, "unused", workers=0) as stack:
        workers = []
        for model, slots in names.values():
            env = {**worker_env(redis.url), "LLAMAQ_MODEL_NAME": model, "LLAMAQ_SLOTS": slots}
            workers.append(spawn([sys.executable, "-m", "shared.cli", "worker"], env, logs / f"{model}.log"))
        try:
            wait_until(lambda: all(ready(stack.base_url, m) for m, _ in names.values()), "workers", workers, 180)
            for model, _ in names.values():
                service_round(stack.base_url, model, texts[:8], clients)  # warm
            for round_ in range(rounds):
                order = list(names) if round_ % 2 == 0 else list(reversed(names))
                for name in order:
                    results[name].append(service_round(stack.base_url, names[name][0], texts, clients))
        finally:
            stop(workers)
    return results


def worker_env(redis_url: str) -> dict[str, str]:
    return {**os.environ, "LLAMAQ_REDIS_URL": redis_url, "LLAMAQ_EMBEDDING": "true", "LLAMAQ_LOG_LEVEL": "WARNING"}


def ready(base_url: str, model: str) -> bool:
    body = httpx.get(f"{base_url}/health/ready", timeout=2).json()
    return int(body.get("models", {}).get(model, {}).get("workers", 0)) >= 1


def report(parts: dict[str, dict[str, list[float]]], args: Any) -> str:
    lines = [
        f"# Embeddings: batched against one at a time ({datetime.date.today()}, {args.rounds} interleaved rounds)",
        "",
        f"engine: {args.texts} sentences, texts per CPU-second; service: {args.requests} one-text requests from "
        f"{args.clients} clients, requests/s (wall clock). Medians; the ratio is against one at a time.",
        "",
        "| part | contender | median | one at a time | ratio | rounds |",
        "|---|---|---|---|---|---|",
    ]
    for part, results in parts.items():
        baseline = statistics.median(results[ONE])
        for name, values in results.items():
            if name == ONE:
                continue
            median = statistics.median(values)
            rounds = ", ".join(f"{value:.0f}" for value in values)
            lines.append(f"| {part} | {name} | {median:.1f} | {baseline:.1f} | {median / baseline:.2f}x | {rounds} |")
        lines.append(f"| {part} | {ONE} | {baseline:.1f} | | | {', '.join(f'{v:.0f}' for v in results[ONE])} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--texts", type=int, default=64)
    parser.add_argument("--requests", type=int, default=48)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("bench/results/embeddings.md"))
    args = parser.parse_args()
    parts = {"engine": engine_rounds(sentences(args.texts), args.rounds)}
    with tempfile.TemporaryDirectory() as logs:
        parts["service"] = service_rounds(sentences(args.requests), args.rounds, args.clients, Path(logs))
    text = report(parts, args)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
