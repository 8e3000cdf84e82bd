"""The slot engine on the real model: batched sequences give the tokens they give alone, and today's engine's."""

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from worker import llamalib
from worker.model import bundled_model_path
from worker.slots import Sequence, SlotEngine, SlotRequest, TokenOut

QUESTIONS = [
    "Write a short story about a lighthouse keeper.",
    "Explain how a bicycle works.",
    "List some facts about the moon.",
    "Describe a busy market in the morning.",
]
MAX = 32


@pytest.fixture(scope="module")
def llamas() -> Iterator[tuple[Any, Any]]:
    """A tokenizer-sized `Llama` for the engine, and a full one as today's engine runs it."""
    import llama_cpp

    llamalib.prepare()
    path = str(bundled_model_path())
    small = llama_cpp.Llama(model_path=path, n_ctx=32, n_batch=8, n_ubatch=8, n_threads=1, verbose=False)
    full = llama_cpp.Llama(model_path=path, n_ctx=2048, n_batch=512, n_threads=1, n_threads_batch=1, verbose=False)
    yield small, full
    small.close()
    full.close()


@pytest.fixture
def make_engine(llamas: tuple[Any, Any]) -> Iterator[Callable[..., SlotEngine]]:
    engines: list[SlotEngine] = []

    def make(slots: int = 4, per_slot_ctx: int = 512, n_batch: int = 512) -> SlotEngine:
        engine = SlotEngine(llamas[0], slots=slots, per_slot_ctx=per_slot_ctx, n_threads=1, n_batch=n_batch)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.close()


def chat(llama: Any, *turns: str) -> list[int]:
    roles = ["user", "assistant"]
    text = "".join(f"<|im_start|>{roles[i % 2]}\n{t}<|im_end|>\n" for i, t in enumerate(turns))
    return list(llama.tokenize(f"{text}<|im_start|>assistant\n".encode(), add_bos=False, special=True))


def greedy(tokens: list[int], max_tokens: int = MAX, **extra: Any) -> SlotRequest:
    return SlotRequest(tokens, max_tokens, temperature=0.0, **extra)


def drain(
    engine: SlotEngine, seqs: list[Sequence], outs: dict[int, list[TokenOut]] | None = None
) -> dict[int, list[TokenOut]]:
    """Step until every sequence in `seqs` has ended; every step's tokens by id(sequence), added to `outs`."""
    outs = {} if outs is None else outs
    for seq in seqs:
        outs.setdefault(id(seq), [])
    for _ in range(10_000):
        if not any(s.live for s in seqs):
            return outs
        for out in engine.step():
            outs.setdefault(id(out.sequence), []).append(out)
    raise AssertionError("sequences never ended")


def tokens_of(outs: dict[int, list[TokenOut]], seq: Sequence) -> list[int]:
    return [o.token for o in outs[id(seq)]]


def alone(engine: SlotEngine, request: SlotRequest) -> list[int]:
    (seq,) = engine.start(request)
    return tokens_of(drain(engine, [seq]), seq)


def todays(full: Any, tokens: list[int], max_tokens: int = MAX) -> list[int]:
    """What worker.engine.Engine.generate samples for a greedy request (same `Llama.generate` arguments)."""
    import llama_cpp

    full.reset()
    out: list[int] = []
    gen = full.generate(tokens, temp=0.0, top_p=1.0, top_k=0, min_p=0.0, frequency_penalty=0.0, presence_penalty=0.0)
    for token in gen:
        out.append(token)
        if llama_cpp.llama_vocab_is_eog(full._model.vocab, token) or len(out) >= max_tokens:
            break
    gen.close()
    return out


@pytest.fixture(scope="module")
def prompts(llamas: tuple[Any, Any]) -> list[list[int]]:
    return [chat(llamas[0], q) for q in QUESTIONS]


@pytest.fixture(scope="module")
def reference(llamas: tuple[Any, Any], prompts: list[list[int]]) -> list[list[int]]:
    return [todays(llamas[1], p) for p in prompts]


def test_four_together_equal_each_alone_and_todays_engine(
    make_engine: Callable[..., SlotEngine], prompts: list[list[int]], reference: list[list[int]]
) -> None:
    solo = [alone(make_engine(), greedy(p, reuse="none")) for p in prompts]
    engine = make_engine()
    seqs = [engine.start(greedy(p))[0] for p in prompts]
    assert [s.slot for s in seqs] == [0, 1, 2, 3]
    outs = drain(engine, seqs)
    together = [tokens_of(outs, s) for s in seqs]
    assert together == solo == reference
    assert all(len(t) == MAX for t in together)  # long enough to be a real comparison


def test_cancel_mid_way_leaves_the_others_unchanged(
    make_engine: Callable[..., SlotEngine], prompts: list[list[int]], reference: list[list[int]]
) -> None:
    engine = make_engine()
    seqs = [engine.start(greedy(p))[0] for p in prompts]
    outs: dict[int, list[TokenOut]] = {}
    for _ in range(6):
        for out in engine.step():
            outs.setdefault(id(out.sequence), []).append(out)
    engine.finish(seqs[1])
    engine.finish(seqs[1])  # idempotent
    rest = [seqs[0], seqs[2], seqs[3]]
    first = engine.step()
    # The highest live sequence moved down into the freed middle slot: live ids stay consecutive.
    assert seqs[3].slot == 1 and sorted(s.slot for s in rest) == [0, 1, 2]
    assert all(o.sequence is not seqs[1] for o in first)
    for out in first:
        outs[id(out.sequence)].append(out)
    drain(engine, rest, outs)
    assert [tokens_of(outs, s) for s in rest] == [reference[0], reference[2], reference[3]]
    assert tokens_of(outs, seqs[1]) == reference[1][:6]
    assert seqs[1].finish_reason is None and not seqs[1].live


def test_json_grammar_beside_free_sequences(
    make_engine: Callable[..., SlotEngine],
    llamas: tuple[Any, Any],
    prompts: list[list[int]],
    reference: list[list[int]],
) -> None:
    from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

    engine = make_engine()
    free = [engine.start(greedy(prompts[0]))[0], engine.start(greedy(prompts[1]))[0]]
    ask = chat(llamas[0], "Give a JSON object with the name and age of a person.")
    (constrained,) = engine.start(greedy(ask, 200, grammar=LlamaGrammar.from_string(JSON_GBNF, verbose=False)))
    outs = drain(engine, [*free, constrained])
    assert [tokens_of(outs, s) for s in free] == reference[:2]
    assert constrained.finish_reason == "stop"
    text = llamas[0].detokenize([o.token for o in outs[id(constrained)] if not o.eog]).decode()
    assert isinstance(json.loads(text), dict)


def todays_second_turn(full: Any, first: list[int], second: list[int]) -> list[int]:
    """Today's engine on a second turn: `Llama.generate` reuses the first turn's prompt and reply."""
    todays(full, first)
    full.reset = lambda: None  # keep what the first turn left in the cache, as a job without a seed does
    try:
        return todays(full, second)
    finally:
        del full.reset


def test_second_turn_reuses_the_first_turns_slot(
    make_engine: Callable[..., SlotEngine], llamas: tuple[Any, Any], prompts: list[list[int]]
) -> None:
    engine = make_engine()
    other, first = engine.start(greedy(prompts[0]))[0], engine.start(greedy(prompts[1]))[0]
    outs = drain(engine, [other, first])
    reply = llamas[0].detokenize(tokens_of(outs, first)).decode()
    follow = chat(llamas[0], QUESTIONS[1], reply, "Now say it in one sentence.")
    (second,) = engine.start(greedy(follow))
    # "exact" reuses what was evaluated as a prompt: the first turn's prompt, not its reply.
    assert second.slot == first.slot == 1
    assert second.cached_tokens == len(prompts[1]) and follow[: len(prompts[1])] == prompts[1]
    warm = tokens_of(drain(engine, [second]), second)
    cold = alone(make_engine(), greedy(follow, reuse="none"))
    assert warm == cold == todays(llamas[1], follow)


def test_reuse_all_takes_the_reply_too_as_todays_engine_does(
    make_engine: Callable[..., SlotEngine], llamas: tuple[Any, Any], prompts: list[list[int]]
) -> None:
    engine = make_engine()
    (first,) = engine.start(greedy(prompts[1]))
    outs = drain(engine, [first])
    follow = chat(llamas[0], QUESTIONS[1], llamas[0].detokenize(tokens_of(outs, first)).decode(), "Shorter.")
    # The slot holds the first prompt and every generated token but the last (sampled, never decoded).
    held = prompts[1] + tokens_of(outs, first)[:-1]
    shared = next(i for i, (a, b) in enumerate(zip([*held, -1], follow, strict=False)) if a != b)
    assert shared > len(prompts[1])
    (second,) = engine.start(greedy(follow, reuse="all"))
    assert second.cached_tokens == shared
    warm = tokens_of(drain(engine, [second]), second)
    assert warm == todays_second_turn(llamas[1], prompts[1], follow)


def test_long_prompt_admitted_while_others_decode(
    make_engine: Callable[..., SlotEngine], llamas: tuple[Any, Any], prompts: list[list[int]]
) -> None:
    facts = " ".join(f"Fact {i}: the number {i} comes after {i - 1}." for i in range(1, 28))
    long = chat(llamas[0], facts + " Which number comes after 17?")
    assert len(long) > 3 * 128
    solo = [alone(make_engine(n_batch=128), greedy(p)) for p in (prompts[0], prompts[1], long)]
    engine = make_engine(n_batch=128)
    busy = [engine.start(greedy(p))[0] for p in prompts[:2]]
    outs = drain(engine, [], {})
    for _ in range(2):
        for out in engine.step():
            outs.setdefault(id(out.sequence), []).append(out)
    (late,) = engine.start(greedy(long))
    during = 0  # steps in which the others decoded while the long prompt was still being evaluated
    while any(s.live for s in [*busy, late]):
        step = engine.step()
        during += late.generated == 0 and any(o.sequence in busy for o in step)
        for out in step:
            outs.setdefault(id(out.sequence), []).append(out)
    assert during >= 3
    assert [tokens_of(outs, s) for s in (*busy, late)] == solo


def test_n2_greedy_copies_and_logprobs(
    make_engine: Callable[..., SlotEngine], prompts: list[list[int]], reference: list[list[int]]
) -> None:
    engine = make_engine()
    seqs = engine.start(greedy(prompts[2], logprobs=True, top_logprobs=5), n=2)
    assert [s.slot for s in seqs] == [0, 1]
    outs = drain(engine, seqs)
    assert tokens_of(outs, seqs[0]) == tokens_of(outs, seqs[1]) == reference[2]
    for out in outs[id(seqs[0])]:
        assert out.logprob is not None and out.logprob <= 0.0
        ids, values = [t for t, _ in out.top_logprobs], [v for _, v in out.top_logprobs]
        assert len(ids) == 5 and values == sorted(values, reverse=True)
        assert ids[0] == out.token and values[0] == out.logprob


def test_seeded_sampling_is_reproducible(make_engine: Callable[..., SlotEngine], prompts: list[list[int]]) -> None:
    def run(seed: int) -> list[list[int]]:
        engine = make_engine()
        seqs = [engine.start(SlotRequest(p, MAX, temperature=0.8, seed=seed))[0] for p in prompts[:2]]
        outs = drain(engine, seqs)
        return [tokens_of(outs, s) for s in seqs]

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_a_full_slot_context_ends_the_sequence_with_length(
    make_engine: Callable[..., SlotEngine], llamas: tuple[Any, Any]
) -> None:
    engine = make_engine(slots=2, per_slot_ctx=64)
    counting = list(llamas[0].tokenize(b"1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,"))
    (seq,) = engine.start(greedy(counting, 500))
    outs = drain(engine, [seq])
    assert seq.finish_reason == "length"
    assert len(outs[id(seq)]) == 64 - len(counting) + 1  # the last token is returned, never decoded
    assert engine.free_slots() == 2


def test_a_lazy_grammar_binds_from_its_trigger_on(
    make_engine: Callable[..., SlotEngine], llamas: tuple[Any, Any]
) -> None:
    """Free text until the trigger matches, then the grammar's text (as an `auto` tool call is enforced)."""
    from worker.sampling import LazyGrammar

    engine = make_engine()
    ask = chat(llamas[0], "Describe a busy market in the morning.")
    free = alone(engine, greedy(ask, 24))
    text = llamas[0].detokenize(free).decode()
    word = text.split()[1]  # the free answer's second word: the trigger
    grammar = LazyGrammar(f'root ::= "{word} <tool_call>done</tool_call>"', (f"({word})",))
    (seq,) = engine.start(greedy(ask, 40, grammar=grammar))
    outs = drain(engine, [seq])
    made = llamas[0].detokenize([o.token for o in outs[id(seq)] if not o.eog]).decode()
    assert seq.finish_reason == "stop"
    assert made.endswith(f"{word} <tool_call>done</tool_call>")
    assert made.startswith(text[: text.index(word)])
