"""Per-sequence sampling for the slot engine: the sampler chain `Llama.generate` would build, and logprobs.

Each sequence gets a chain of its own, built in the same order and with the same calls as llama-cpp-python's
`Llama._init_sampler` (top_k=0, min_p=0, typical_p=1), so a sequence samples as today's high-level API does.
"""

import ctypes
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

# What `Llama.generate` gives its penalties sampler (`last_n_tokens_size`): the same call, the same chain.
PENALTY_LAST_N = 64


@dataclass(frozen=True)
class LazyGrammar:
    """GBNF that binds only once the output matches one of `triggers` (regexes): from the first capture on."""

    text: str
    triggers: tuple[str, ...]


class Sampled(Protocol):
    """What a chain is built from (worker.slots.SlotRequest)."""

    @property
    def temperature(self) -> float: ...
    @property
    def top_p(self) -> float: ...
    @property
    def presence_penalty(self) -> float: ...
    @property
    def frequency_penalty(self) -> float: ...
    @property
    def grammar(self) -> Any: ...


def chain(lib: Any, vocab: Any, n_vocab: int, request: Sampled, seed: int) -> Any:
    """A new native sampler chain for `request` (the caller frees it with `llama_sampler_free`)."""
    built = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())
    parts = [
        # Called exactly as llama-cpp-python calls it (n_vocab first), so both chains behave alike.
        lib.llama_sampler_init_penalties(
            n_vocab, PENALTY_LAST_N, 1.0, request.frequency_penalty, request.presence_penalty
        )
    ]
    if request.grammar is not None:
        grammar = _grammar(lib, vocab, request.grammar)
        if not grammar:
            lib.llama_sampler_free(built)
            raise ValueError("the grammar could not be parsed")
        parts.append(grammar)
    if request.temperature < 0:
        parts.append(lib.llama_sampler_init_dist(seed))
    elif request.temperature == 0:
        parts.append(lib.llama_sampler_init_greedy())
    else:
        parts += [
            lib.llama_sampler_init_top_k(0),
            lib.llama_sampler_init_typical(1.0, 1),
            lib.llama_sampler_init_top_p(request.top_p, 1),
            lib.llama_sampler_init_min_p(0.0, 1),
            lib.llama_sampler_init_temp(request.temperature),
            lib.llama_sampler_init_dist(seed),
        ]
    for part in parts:
        lib.llama_sampler_chain_add(built, part)
    return built


def _grammar(lib: Any, vocab: Any, grammar: Any) -> Any:
    """The native grammar sampler of a `LlamaGrammar`, a GBNF string or a `LazyGrammar`."""
    if isinstance(grammar, LazyGrammar):
        patterns = (ctypes.c_char_p * len(grammar.triggers))(*[t.encode() for t in grammar.triggers])
        return lib.llama_sampler_init_grammar_lazy_patterns(
            vocab, grammar.text.encode(), b"root", patterns, len(grammar.triggers), None, 0
        )
    text, root = (grammar, "root") if isinstance(grammar, str) else (grammar._grammar, grammar._root)
    return lib.llama_sampler_init_grammar(vocab, text.encode(), root.encode())


def logprobs(logits_ptr: Any, n_vocab: int, token: int, top: int) -> tuple[float, list[tuple[int, float]]]:
    """OpenAI semantics: log-softmax of the model's raw logits row, before any sampler touched it."""
    logits = np.ctypeslib.as_array(ctypes.cast(logits_ptr, ctypes.POINTER(ctypes.c_float)), shape=(n_vocab,))
    peak = float(logits.max())
    logz = peak + float(np.log(np.exp(logits - peak, dtype=np.float64).sum()))
    alternatives: list[tuple[int, float]] = []
    if top > 0:
        k = min(top, n_vocab)
        ids = np.argpartition(-logits, k - 1)[:k]
        ids = ids[np.argsort(-logits[ids], kind="stable")]
        alternatives = [(int(i), float(logits[i]) - logz) for i in ids]
    return float(logits[token]) - logz, alternatives
