"""What requantizing the bundled Q4_1 SmolLM2 to Q8_0 or Q4_0 costs in quality and buys in speed.

`python -m bench.weights [--rounds 5]` converts the shipped file with worker.weights, then per format:
greedy agreement with Q4_1 (20 chat prompts, 64 tokens), perplexity of a fixed public-domain text, and,
one fresh process per format per round with the order rotated, prefill, single-sequence decode and
8-sequence batched decode tok/s on one thread, plus RSS. Medians over rounds; writes bench/results/weights.md.
"""

import argparse
import ctypes
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import psutil

from bench.procs import json_probe
from worker.model import bundled_model_path
from worker.weights import convert, default_cache_dir

ROOT = Path(__file__).resolve().parent.parent
FORMATS = ("q4_1", "q8_0", "q4_0")
GREEDY_TOKENS = 64
DECODE_TOKENS = 128
BATCH, BATCH_STEPS, SLOT = 8, 48, 256


def load(path: Path, n_ctx: int, threads: int) -> Any:
    from llama_cpp import Llama

    from worker import llamalib

    llamalib.prepare()
    return Llama(str(path), n_ctx=n_ctx, n_batch=512, n_threads=threads, n_threads_batch=threads, verbose=False)


def chat_tokens(llama: Any, prompt: str) -> list[int]:
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    formatter = Jinja2ChatFormatter(llama.metadata["tokenizer.chat_template"], eos_token="", bos_token="")
    text = formatter(messages=[{"role": "user", "content": prompt}]).prompt
    return list(llama.tokenize(text.encode(), add_bos=False, special=True))


def decode(ctx: Any, entries: list[tuple[int, int, int, bool]]) -> None:
    """One llama_decode of (token, position, sequence, wants logits) entries."""
    import llama_cpp

    batch = llama_cpp.llama_batch_init(len(entries), 0, 1)
    try:
        for i, (token, pos, seq, logits) in enumerate(entries):
            batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, pos, 1
            batch.seq_id[i][0], batch.logits[i] = seq, logits
        batch.n_tokens = len(entries)
        if llama_cpp.llama_decode(ctx, batch) != 0:
            raise RuntimeError("llama_decode failed")
    finally:
        llama_cpp.llama_batch_free(batch)


def rows(ctx: Any, first: int, count: int, n_vocab: int) -> np.ndarray:
    import llama_cpp

    pointer = ctypes.cast(llama_cpp.llama_get_logits_ith(ctx, first), ctypes.POINTER(ctypes.c_float))
    return np.ctypeslib.as_array(pointer, shape=(count, n_vocab)).copy()


def clear(ctx: Any) -> None:
    import llama_cpp

    llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(ctx), True)


def greedy(llama: Any, prompt: list[int], n: int) -> list[int]:
    ctx, vocab = llama._ctx.ctx, llama.n_vocab()
    clear(ctx)
    decode(ctx, [(t, i, 0, i == len(prompt) - 1) for i, t in enumerate(prompt)])
    out: list[int] = []
    for pos in range(len(prompt), len(prompt) + n):
        out.append(int(rows(ctx, -1, 1, vocab)[0].argmax()))
        if out[-1] == llama.token_eos():
            break
        decode(ctx, [(out[-1], pos, 0, True)])
    return out


def perplexity(llama: Any, tokens: list[int], chunk: int = 256) -> float:
    ctx, vocab, nll = llama._ctx.ctx, llama.n_vocab(), []
    clear(ctx)
    for start in range(0, len(tokens) - 1, chunk):
        part = tokens[start : start + chunk]
        decode(ctx, [(t, start + i, 0, True) for i, t in enumerate(part)])
        logits = rows(ctx, 0, len(part), vocab).astype(np.float64)
        logz = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
        targets = tokens[start + 1 : start + 1 + len(part)]
        nll += [logz[i] - logits[i, t] for i, t in enumerate(targets)]
    return float(np.exp(np.mean(nll)))


def quality_probe(path: Path) -> dict[str, Any]:
    llama = load(path, n_ctx=2048, threads=os.cpu_count() or 1)
    outputs = [greedy(llama, chat_tokens(llama, prompt), GREEDY_TOKENS) for prompt in PROMPTS]
    text = list(llama.tokenize(TEXT.encode(), add_bos=True))[:2048]
    return {"outputs": outputs, "perplexity": perplexity(llama, text), "text_tokens": len(text)}


def timed(ctx: Any, plan: list[list[tuple[int, int, int, bool]]]) -> tuple[float, float]:
    """Wall and CPU seconds of one llama_decode per item of `plan`."""
    wall, cpu = time.perf_counter(), time.process_time()
    for entries in plan:
        decode(ctx, entries)
    return time.perf_counter() - wall, time.process_time() - cpu


def speed_probe(path: Path) -> dict[str, Any]:
    import llama_cpp

    llama = load(path, n_ctx=512, threads=1)
    ctx, long_prompt = llama._ctx.ctx, chat_tokens(llama, " ".join(PROMPTS))[:320]
    prompt = chat_tokens(llama, PROMPTS[0])
    decode(ctx, [(t, i, 0, False) for i, t in enumerate(prompt)])  # the first pass after load is slow
    clear(ctx)
    prefill = []
    for _ in range(3):
        clear(ctx)
        prefill.append(timed(ctx, [[(t, i, 0, i == 319) for i, t in enumerate(long_prompt)]]))
    clear(ctx)
    decode(ctx, [(t, i, 0, i == len(prompt) - 1) for i, t in enumerate(prompt)])
    single = timed(ctx, [[(prompt[-1], pos, 0, True)] for pos in range(len(prompt), len(prompt) + DECODE_TOKENS)])
    rss = psutil.Process().memory_info().rss
    params = llama_cpp.llama_context_default_params()
    params.n_ctx, params.n_seq_max, params.n_batch = BATCH * SLOT, BATCH, 512
    params.n_threads = params.n_threads_batch = 1
    params.flash_attn_type = 0  # as the worker: off
    batched_ctx = llama_cpp.llama_init_from_model(llama._model.model, params)
    starts = [chat_tokens(llama, PROMPTS[seq]) for seq in range(BATCH)]
    for seq, tokens in enumerate(starts):
        decode(batched_ctx, [(t, i, seq, i == len(tokens) - 1) for i, t in enumerate(tokens)])
    plan = [[(starts[s][-1], len(starts[s]) + k, s, True) for s in range(BATCH)] for k in range(BATCH_STEPS)]
    batched = timed(batched_ctx, plan)
    llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(batched_ctx), 0, len(starts[0]), -1)
    alone = timed(batched_ctx, [entries[:1] for entries in plan])  # seq 0 again, by itself
    llama_cpp.llama_free(batched_ctx)
    return {
        "prefill": statistics.median(len(long_prompt) / wall for wall, _ in prefill),
        "decode": DECODE_TOKENS / single[0],
        "decode_cpu": DECODE_TOKENS / single[1],
        "batched": BATCH * BATCH_STEPS / batched[0],
        "batched_cpu": BATCH * BATCH_STEPS / batched[1],
        "slot_alone_cpu": BATCH_STEPS / alone[1],
        "rss_mb": rss / 2**20,
    }


def probe(kind: str, path: Path) -> dict[str, Any]:
    return json_probe([sys.executable, "-m", "bench.weights", "--probe", kind, str(path)], timeout=900)


def agreement(reference: list[list[int]], other: list[list[int]]) -> tuple[float, float]:
    same = [a == b for a, b in zip(reference, other, strict=True)]
    leading = []
    for a, b in zip(reference, other, strict=True):
        n = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
        leading.append(n / max(len(a), len(b)))
    return sum(same) / len(same), statistics.mean(leading)


def machine_info() -> str:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=30).stdout.splitlines()[:20]
    stamp = time.strftime("%Y-%m-%d %H:%M %Z")
    return f"Measured {stamp}, load average {os.getloadavg()[0]:.2f} at start.\n\n```\n" + "\n".join(lscpu) + "\n```\n"


def measure(rounds: int) -> tuple[dict[str, Path], dict[str, dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    source = bundled_model_path()
    paths = {"q4_1": source} | {kind: convert(source, kind, default_cache_dir()) for kind in FORMATS[1:]}
    quality = {kind: probe("quality", path) for kind, path in paths.items()}
    speed: dict[str, list[dict[str, Any]]] = {kind: [] for kind in FORMATS}
    for round_no in range(rounds):
        order = FORMATS[round_no % 3 :] + FORMATS[: round_no % 3]
        for kind in order:
            speed[kind].append(probe("speed", paths[kind]))
        print(f"round {round_no + 1}/{rounds} done", file=sys.stderr)
    return paths, quality, speed


def table(paths: dict[str, Path], quality: dict[str, dict[str, Any]], speed: dict[str, list[dict[str, Any]]]) -> str:
    reference = quality["q4_1"]["outputs"]
    lines = [
        "| format | identical outputs | identical leading tokens | perplexity | prefill tok/s | decode tok/s "
        "(per CPU-s) | 8-seq batched tok/s (per CPU-s) | 1 seq in the 8-slot context, per CPU-s | batched / single "
        "| file MB | RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for kind in FORMATS:
        same, leading = agreement(reference, quality[kind]["outputs"])
        m = {key: statistics.median(run[key] for run in speed[kind]) for key in speed[kind][0]}
        lines.append(
            f"| {kind.upper()} | {same:.0%} | {leading:.0%} | {quality[kind]['perplexity']:.2f} | {m['prefill']:.0f} "
            f"| {m['decode']:.1f} ({m['decode_cpu']:.1f}) | {m['batched']:.1f} ({m['batched_cpu']:.1f}) "
            f"| {m['slot_alone_cpu']:.1f} | {m['batched_cpu'] / m['decode_cpu']:.2f}x "
            f"| {paths[kind].stat().st_size / 1e6:.0f} | {m['rss_mb']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--probe", choices=("quality", "speed"))
    parser.add_argument("path", nargs="?", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "weights.md")
    args = parser.parse_args()
    if args.probe:
        result = quality_probe(args.path) if args.probe == "quality" else speed_probe(args.path)
        print(orjson.dumps(result).decode())
        return
    info = machine_info()
    paths, quality, speed = measure(args.rounds)
    report = table(paths, quality, speed)
    print(report)
    args.out.write_text(
        f"# Weight formats of the bundled SmolLM2-135M-Instruct\n\n{info}\n{report}\n"
        f"Speed: medians of {args.rounds} interleaved rounds, one fresh process per format per round, 1 thread.\n\n"
        f"```json\n{orjson.dumps(speed, option=orjson.OPT_INDENT_2).decode()}\n```\n"
    )


PROMPTS = (
    "What is the capital of France?",
    "Write a haiku about autumn leaves.",
    "Explain photosynthesis in two sentences.",
    "Give me three tips for learning a new language.",
    "What is 17 times 23?",
    "Translate 'good morning, my friend' into Spanish.",
    "Write a Python function that reverses a string.",
    "Why is the sky blue?",
    "Summarize the plot of Romeo and Juliet in one paragraph.",
    "List the planets of the solar system in order from the sun.",
    "What are the main differences between a cat and a dog as pets?",
    "Write a short, polite email declining a meeting invitation.",
    "How does a refrigerator keep food cold?",
    "Tell me a joke about computers.",
    "What is the difference between weather and climate?",
    "Suggest a name for a small bakery by the sea.",
    "Describe the taste of a lemon to someone who has never had one.",
    "What should I pack for a weekend hiking trip?",
    "Explain what a prime number is, with examples.",
    "Write the opening line of a mystery novel.",
)

# Jane Austen, Pride and Prejudice (1813), the opening of chapter 1: public domain.
TEXT = """It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want
of a wife.

However little known the feelings or views of such a man may be on his first entering a neighbourhood, this truth is
so well fixed in the minds of the surrounding families, that he is considered the rightful property of some one or
other of their daughters.

"My dear Mr. Bennet," said his lady to him one day, "have you heard that Netherfield Park is let at last?"

Mr. Bennet replied that he had not.

"But it is," returned she; "for Mrs. Long has just been here, and she told me all about it."

Mr. Bennet made no answer.

"Do you not want to know who has taken it?" cried his wife impatiently.

"You want to tell me, and I have no objection to hearing it."

This was invitation enough.

"Why, my dear, you must know, Mrs. Long says that Netherfield is taken by a young man of large fortune from the north
of England; that he came down on Monday in a chaise and four to see the place, and was so much delighted with it, that
he agreed with Mr. Morris immediately; that he is to take possession before Michaelmas, and some of his servants are to
be in the house by the end of next week."

"What is his name?"

"Bingley."

"Is he married or single?"

"Oh! Single, my dear, to be sure! A single man of large fortune; four or five thousand a year. What a fine thing for
our girls!"

"How so? How can it affect them?"

"My dear Mr. Bennet," replied his wife, "how can you be so tiresome! You must know that I am thinking of his marrying
one of them."

"Is that his design in settling here?"

"Design! Nonsense, how can you talk so! But it is very likely that he may fall in love with one of them, and therefore
you must visit him as soon as he comes."

"I see no occasion for that. You and the girls may go, or you may send them by themselves, which perhaps will be still
better, for as you are as handsome as any of them, Mr. Bingley may like you the best of the party."

"My dear, you flatter me. I certainly have had my share of beauty, but I do not pretend to be anything extraordinary
now. When a woman has five grown-up daughters, she ought to give over thinking of her own beauty."

"In such cases, a woman has not often much beauty to think of."

"But, my dear, you must indeed go and see Mr. Bingley when he comes into the neighbourhood."

"It is more than I engage for, I assure you."

"But consider your daughters. Only think what an establishment it would be for one of them. Sir William and Lady Lucas
are determined to go, merely on that account, for in general, you know, they visit no newcomers. Indeed you must go,
for it will be impossible for us to visit him if you do not."

"You are over-scrupulous, surely. I dare say Mr. Bingley will be very glad to see you; and I will send a few lines by
you to assure him of my hearty consent to his marrying whichever he chooses of the girls; though I must throw in a good
word for my little Lizzy."

"I desire you will do no such thing. Lizzy is not a bit better than the others; and I am sure she is not half so
handsome as Jane, nor half so good-humoured as Lydia. But you are always giving her the preference."

"They have none of them much to recommend them," replied he; "they are all silly and ignorant like other girls; but
Lizzy has something more of quickness than her sisters."

"Mr. Bennet, how can you abuse your own children in such a way? You take delight in vexing me. You have no compassion
for my poor nerves."

"You mistake me, my dear. I have a high respect for your nerves. They are my old friends. I have heard you mention
them with consideration these last twenty years at least."

"Ah, you do not know what I suffer."

"But I hope you will get over it, and live to see many young men of four thousand a year come into the
neighbourhood."

"It will be no use to us, if twenty such should come, since you will not visit them."

"Depend upon it, my dear, that when there are twenty, I will visit them all."

Mr. Bennet was so odd a mixture of quick parts, sarcastic humour, reserve, and caprice, that the experience of
three-and-twenty years had been insufficient to make his wife understand his character. Her mind was less difficult
to develop. She was a woman of mean understanding, little information, and uncertain temper. When she was
discontented, she fancied herself nervous. The business of her life was to get her daughters married; its solace was
visiting and news.
"""

if __name__ == "__main__":
    main()
