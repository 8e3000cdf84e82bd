"""The slot engine against raw `Llama.generate`: decode tok/s of N batched sequences at one thread, and RSS by slots.

`python -m bench.slot_engine [--rounds 3] [--tokens 128] [--out bench/results/slot_engine.md]` runs every
contender once per round, rounds interleaved, and reports medians: wall-clock tok/s and tok/s per CPU-second
(the latter is less moved by neighbours on a shared machine). RSS is read in a fresh process per slot count.
"""

import argparse
import datetime
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from worker import llamalib
from worker.model import bundled_model_path

TOPICS = ["a lighthouse", "a dragon", "the ocean", "a robot", "a city at night", "a forest", "a train", "the moon"]
PER_SLOT_CTX = 512
N_BATCH = 512


def chat(llama: Any, topic: str) -> list[int]:
    text = f"<|im_start|>user\nWrite a long, detailed story about {topic}.<|im_end|>\n<|im_start|>assistant\n"
    return list(llama.tokenize(text.encode(), add_bos=False, special=True))


def clocks() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def rates(tokens: int, start: tuple[float, float]) -> tuple[float, float]:
    wall, cpu = clocks()
    return tokens / (wall - start[0]), tokens / max(cpu - start[1], 1e-9)


def raw_decode(full: Any, prompt: list[int], tokens: int) -> tuple[float, float]:
    """One sequence through `Llama.generate`, timed from its first token (decode only, eog not stopping it)."""
    full.reset()
    gen = full.generate(prompt, temp=0.0, top_p=1.0, top_k=0, min_p=0.0)
    next(gen)
    start = clocks()
    for _ in range(tokens - 1):
        next(gen)
    gen.close()
    return rates(tokens - 1, start)


def slot_decode(engine: Any, prompts: list[list[int]], tokens: int) -> tuple[float, float]:
    """N sequences in the slot engine, timed once every prompt has been evaluated."""
    from worker.slots import SlotRequest

    seqs = [engine.start(SlotRequest(p, tokens, temperature=0.0, reuse="none"))[0] for p in prompts]
    while any(s.generated == 0 for s in seqs):
        engine.step()
    start, done = clocks(), 0
    while any(s.live for s in seqs):
        done += len(engine.step())
    for seq in seqs:
        engine.finish(seq)
    return rates(done, start)


def gapped_decode(engine: Any, prompts: list[list[int]], tokens: int) -> tuple[float, float]:
    """Eight sequences started, the odd slots ended after prefill: four live on seq ids 0, 2, 4, 6."""
    from worker.slots import SlotRequest

    seqs = [engine.start(SlotRequest(p, tokens, temperature=0.0, reuse="none"))[0] for p in prompts]
    while any(s.generated == 0 for s in seqs):
        engine.step()
    for seq in seqs[1::2]:
        engine.finish(seq)
    live = seqs[0::2]
    assert [s.slot for s in live] == [0, 2, 4, 6]
    start, done = clocks(), 0
    while any(s.live for s in live):
        done += len(engine.step())
    return rates(done, start)


def rss_probe(slots: int) -> float:
    """Run in a child: load, build `slots` slots, fill every one with a short job; RSS MB."""
    import llama_cpp

    from worker.slots import SlotEngine, SlotRequest

    llamalib.prepare()
    path = str(bundled_model_path())
    small = llama_cpp.Llama(model_path=path, n_ctx=32, n_batch=8, n_ubatch=8, n_threads=1, verbose=False)
    engine = SlotEngine(small, slots=slots, per_slot_ctx=PER_SLOT_CTX, n_threads=1, n_batch=N_BATCH)
    seqs = [engine.start(SlotRequest(chat(small, TOPICS[i % 8]), 16, temperature=0.0))[0] for i in range(slots)]
    while any(s.live for s in seqs):
        engine.step()
    rss = psutil.Process().memory_info().rss / 2**20
    engine.close()
    small.close()
    return rss


def rss_of(slots: int) -> float:
    code = f"from bench.slot_engine import rss_probe; print(rss_probe({slots}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    return float(out.stdout.strip().splitlines()[-1])


def measure(rounds: int, tokens: int) -> dict[str, list[tuple[float, float]]]:
    import llama_cpp

    from worker.slots import SlotEngine

    llamalib.prepare()
    path = str(bundled_model_path())
    small = llama_cpp.Llama(model_path=path, n_ctx=32, n_batch=8, n_ubatch=8, n_threads=1, verbose=False)
    full = llama_cpp.Llama(
        model_path=path, n_ctx=PER_SLOT_CTX, n_batch=N_BATCH, n_threads=1, n_threads_batch=1, verbose=False
    )
    engine = SlotEngine(small, slots=8, per_slot_ctx=PER_SLOT_CTX, n_threads=1, n_batch=N_BATCH)
    loose = SlotEngine(small, slots=8, per_slot_ctx=PER_SLOT_CTX, n_threads=1, n_batch=N_BATCH, compact=False)
    prompts = [chat(small, t) for t in TOPICS]
    runs: dict[str, Callable[[], tuple[float, float]]] = {
        "raw Llama.generate, 1 sequence": lambda: raw_decode(full, prompts[0], tokens),
        "slot engine, 1 sequence": lambda: slot_decode(engine, prompts[:1], tokens),
        "slot engine, 4 sequences": lambda: slot_decode(engine, prompts[:4], tokens),
        "slot engine, 8 sequences": lambda: slot_decode(engine, prompts[:8], tokens),
        "slot engine, 4 sequences on seq ids 0,2,4,6 (no compaction)": lambda: gapped_decode(loose, prompts, tokens),
    }
    for run in runs.values():  # warm-up: the first passes after load are slow
        run()
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            results[name].append(run())
    engine.close()
    loose.close()
    small.close()
    full.close()
    return results


def table(results: dict[str, list[tuple[float, float]]], rss: dict[int, float]) -> str:
    base = statistics.median(r[0] for r in results["raw Llama.generate, 1 sequence"])
    base_cpu = statistics.median(r[1] for r in results["raw Llama.generate, 1 sequence"])
    lines = [
        "| contender (1 thread) | aggregate decode tok/s | x raw | tok per CPU-s | x raw | per sequence tok/s |",
        "|---|---|---|---|---|---|",
    ]
    for name, values in results.items():
        wall, cpu = statistics.median(v[0] for v in values), statistics.median(v[1] for v in values)
        n = int(name.split(",")[1].split()[0])
        lines.append(f"| {name} | {wall:.1f} | {wall / base:.2f} | {cpu:.1f} | {cpu / base_cpu:.2f} | {wall / n:.1f} |")
    lines += ["", f"| slots ({PER_SLOT_CTX}-token slots, every slot filled) | RSS MB |", "|---|---|"]
    lines += [f"| {slots} | {mb:.0f} |" for slots, mb in rss.items()]
    return "\n".join(lines)


def machine() -> str:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout.splitlines()[:20]
    return "\n".join(lscpu)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.slot_engine", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=128, help="generated tokens per sequence")
    parser.add_argument("--out", type=Path, help="write the markdown report here")
    parser.add_argument("--json", type=Path, help="write the raw per-round numbers here")
    args = parser.parse_args(argv)
    rss = {slots: rss_of(slots) for slots in (1, 4, 8)}
    results = measure(args.rounds, args.tokens)
    report = table(results, rss)
    print(report)
    if args.json:
        args.json.write_text(json.dumps({"results": results, "rss_mb": rss}, indent=1))
    if args.out:
        when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
        args.out.write_text(
            f"# Slot engine vs raw `Llama.generate`\n\n`python -m bench.slot_engine --rounds {args.rounds} "
            f"--tokens {args.tokens}`, {when}, SmolLM2-135M-Instruct Q4_1, greedy, 1 thread, medians of "
            f"{args.rounds} interleaved rounds on a shared machine (read ratios, not absolute speeds).\n\n"
            f"{report}\n\n## Machine\n\n```\n{machine()}\n```\n"
        )


if __name__ == "__main__":
    main()
