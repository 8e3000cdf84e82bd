"""Embeddings batched against one at a time: in the engine, and through the whole service.

`python -m bench.embeddings [--rounds 5] [--texts 64] [--requests 48] [--clients 8] [--out bench/results/embeddings.md]`

- engine: the bundled all-MiniLM-L6-v2 GGUF in one `Embedder` (one thread), `--texts` sentences embedded in one
  call (packed into as few decodes as fit) against one call a sentence; texts per CPU-second.
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
from worker.embedder import Embedder

SUBJECTS = ["The cat", "A kitten", "The committee", "Our quarterly revenue", "The old lighthouse", "A tired runner"]
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
    embedder = Embedder(llama, per_input=512, pack_tokens=256)  # as a worker builds it with the defaults
    tokens = [llama.tokenize(text.encode()) for text in texts]
    embedder.embed(tokens)  # warm
    results: dict[str, list[float]] = {"batched": [], "one at a time": []}
    for round_ in range(rounds):
        order = ["batched", "one at a time"] if round_ % 2 == 0 else ["one at a time", "batched"]
        for name in order:
            # CPU seconds of this process: less moved by neighbours on a shared machine than the wall clock.
            start = time.process_time()
            if name == "batched":
                embedder.embed(tokens)
            else:
                for each in tokens:
                    embedder.embed([each])
            results[name].append(len(texts) / max(time.process_time() - start, 1e-9))
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
    names = {"batched": ("minilm-slots8", "8"), "one at a time": ("minilm-slots1", "1")}
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
        f"engine: {args.texts} sentences; service: {args.requests} one-text requests from {args.clients} clients.",
        "",
        "| part | unit | batched (median) | one at a time (median) | ratio | rounds batched | rounds one at a time |",
        "|---|---|---|---|---|---|---|",
    ]
    for part, unit in (("engine", "texts per CPU-second"), ("service", "requests/s (wall clock)")):
        batched, single = parts[part]["batched"], parts[part]["one at a time"]
        ratio = statistics.median(batched) / statistics.median(single)
        each = ", ".join(f"{value:.0f}" for value in batched), ", ".join(f"{value:.0f}" for value in single)
        lines.append(
            f"| {part} | {unit} | {statistics.median(batched):.1f} | {statistics.median(single):.1f} | "
            f"{ratio:.2f}x | {each[0]} | {each[1]} |"
        )
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
