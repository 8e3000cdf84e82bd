"""What `llamaq bench --capacity` sends: two workloads (one prompt; distinct questions behind one system prompt)."""

import itertools
from dataclasses import dataclass
from typing import Any

from bench.config import PROMPT

# About 150 tokens with SmolLM2's tokenizer: a prefix every request of the distinct workload shares.
SYSTEM = (
    "You are a patient teacher at a small public library. Visitors of every age come to your desk with "
    "questions about science, history, cooking, travel, language and everyday life. Answer in plain "
    "English, in short paragraphs, without lists or headings. Start with the direct answer, then give one "
    "concrete example that a twelve-year-old could picture, then one fact that most people do not know. "
    "Never invent sources, dates or numbers: when you are unsure, say so and suggest where in the library "
    "the visitor could look it up. Keep a warm, calm tone, avoid jargon, and explain any technical word the "
    "first time you use it. If a question is unclear, answer the most likely reading and say which reading "
    "you chose. Do not mention that you are a program."
)
TOPICS = [
    "rainbows", "volcanoes", "bread yeast", "the tides", "bees", "glaciers", "the printing press", "thunder",
    "magnets", "coral reefs", "the Roman roads", "compasses", "photosynthesis", "eclipses", "sourdough",
    "earthquakes", "lighthouses", "the water cycle", "owls", "paper money", "windmills", "snowflakes",
    "the silk road", "fireflies",
]  # fmt: skip
ASKS = [
    "How do {} work?", "Why do {} matter to people?", "What is the history of {}?", "What surprises people about {}?",
]  # fmt: skip
QUESTIONS = [ask.format(topic) for topic, ask in itertools.product(TOPICS, ASKS)]  # 96 distinct questions
SAME, DISTINCT = "same prompt", "distinct prompts"
WORKLOADS = (SAME, DISTINCT)


@dataclass(frozen=True)
class Plan:
    """One run's sizes: every contestant gets the same requests, greedy, `max_tokens` tokens each."""

    loads: tuple[int, ...] = (8, 32)
    per_client: int = 3
    max_tokens: int = 128
    rounds: int = 3
    n_ctx: int = 2048  # per slot
    slot_counts: tuple[int, ...] = (4, 8)
    single_requests: int = 6  # per contestant per round, alone
    memory_slots: tuple[int, ...] = (1, 4, 8)
    warmup: int = 2
    seed: int = 42
    layouts: tuple[str, ...] = ()  # only these llamaq layouts ("WxTxS": workers x threads x slots); () = all


# One layout: the smoke run checks the shape of the output, not which layout wins.
SMOKE = Plan(
    loads=(2,),
    per_client=1,
    max_tokens=8,
    rounds=1,
    slot_counts=(2,),
    single_requests=1,
    memory_slots=(1, 2),
    warmup=1,
    layouts=("2x1x2",),
)


def messages(workload: str, index: int) -> list[dict[str, str]]:
    """Request `index`'s messages: the benchmark's one prompt, or question `index` behind the shared system prompt."""
    if workload == SAME:
        return [{"role": "user", "content": PROMPT}]
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTIONS[index % len(QUESTIONS)]}]


def body(plan: Plan, model: str, workload: str, index: int, sampler_extras: bool) -> dict[str, Any]:
    """A streamed, greedy chat request; `sampler_extras` turns off the peer's own top_k/min_p/repeat penalty."""
    out: dict[str, Any] = {
        "model": model,
        "messages": messages(workload, index),
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": plan.max_tokens,
        "temperature": 0.0,
        "top_p": 1.0,
        "seed": plan.seed,
    }
    if sampler_extras:
        out |= {"top_k": 0, "min_p": 0.0, "repeat_penalty": 1.0}
    return out
