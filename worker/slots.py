"""Batched decode: one llama context holding `slots` sequences, one token of every generating sequence per step.

Every method must be called from the same OS thread (DESIGN.md: llama.cpp is driven by one thread per process).
The engine deals in token ids; stop strings, detokenization and job bookkeeping stay with the caller.
"""

import random
from dataclasses import dataclass, field
from typing import Any, Literal

from worker import sampling

FinishReason = Literal["stop", "length"]
# How much of a free slot's cached tokens a new prompt may reuse. KV written by one-token decodes (generated
# tokens) differs in the last bits from KV of the same tokens in a prompt chunk, while chunks of 2..n_batch tokens
# agree exactly (measured). "exact": only tokens evaluated in prompt chunks, so the output equals a cold run;
# "all": also the previous job's generated tokens, as `Llama.generate` does (its logits may shift slightly);
# "none": a cold run.
Reuse = Literal["exact", "all", "none"]


@dataclass(frozen=True)
class SlotRequest:
    """One job's prompt and sampling, in the terms of `Llama.generate` (top_k=0, min_p=0)."""

    tokens: list[int]
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int | None = None
    grammar: Any = None  # a `LlamaGrammar` or a GBNF string
    logprobs: bool = False
    top_logprobs: int = 0
    reuse: "Reuse" = "exact"


@dataclass(eq=False)
class Sequence:
    """Handle of one generating sequence; `slot` is its llama seq id and may change when slots are compacted."""

    request: SlotRequest
    index: int  # which of the request's `n` choices
    slot: int
    cached_tokens: int  # prompt tokens reused from the slot's cache
    generated: int = 0
    finish_reason: FinishReason | None = None
    _sampler: Any = field(default=None, repr=False)
    _last: int = field(default=-1, repr=False)  # sampled, not yet decoded
    _pending: list[int] = field(default_factory=list, repr=False)  # prompt tokens not yet evaluated
    _copies: "list[Sequence]" = field(default_factory=list, repr=False)  # n > 1: take this one's KV at the end

    @property
    def live(self) -> bool:
        """Still holding its slot: neither finished by the engine nor by `SlotEngine.finish`."""
        return self._sampler is not None


@dataclass(frozen=True)
class TokenOut:
    sequence: Sequence
    token: int
    eog: bool
    finish_reason: FinishReason | None  # set on the sequence's last token; the engine has then freed its slot
    logprob: float | None = None
    top_logprobs: list[tuple[int, float]] = field(default_factory=list)


@dataclass
class _Slot:
    tokens: list[int] = field(default_factory=list)  # what this seq id holds in the KV cache
    exact: int = 0  # how many leading `tokens` were evaluated in prompt chunks of two or more tokens
    owner: Sequence | None = None


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


class SlotEngine:
    """One context, `slots` split KV streams of `per_slot_ctx` cells each, flash attention off.

    Split KV and one `llama_decode` per new prompt chunk keep every sequence's output bit-identical to a solo
    run (research/batched-decode.md); the model and tokenizer come from `llama`, whose own context is unused.
    """

    def __init__(
        self, llama: Any, *, slots: int, per_slot_ctx: int, n_threads: int, n_batch: int, compact: bool = True
    ) -> None:
        import llama_cpp

        self._lib = llama_cpp
        self._model = llama._model
        self._vocab = self._model.vocab
        self.n_vocab = int(llama.n_vocab())
        self.slots = slots
        self.per_slot_ctx = per_slot_ctx
        self.n_batch = n_batch
        self._compact = compact
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = per_slot_ctx * slots
        params.n_batch = n_batch
        params.n_ubatch = min(n_batch, 512)
        params.n_seq_max = slots
        params.kv_unified = False
        params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        params.n_threads = params.n_threads_batch = n_threads
        self._ctx = llama_cpp.llama_init_from_model(self._model.model, params)
        if not self._ctx:
            raise RuntimeError("llama.cpp could not create the slot context")
        self._mem = llama_cpp.llama_get_memory(self._ctx)
        self._batch = llama_cpp.llama_batch_init(max(n_batch, slots), 0, 1)
        self._slots = [_Slot() for _ in range(slots)]
        self._prefill: list[Sequence] = []  # FIFO of sequences whose prompt is being evaluated
        self._closed = False

    # -- admission -------------------------------------------------------------------------------------------

    def free_slots(self) -> int:
        return sum(slot.owner is None for slot in self._slots)

    def start(self, request: SlotRequest, n: int = 1) -> list[Sequence]:
        """Admit a job with `n` choices; its prompt is evaluated once, by the next steps."""
        if not request.tokens or request.max_tokens < 1 or n < 1:
            raise ValueError("a sequence needs prompt tokens, max_tokens >= 1 and n >= 1")
        if len(request.tokens) > self.per_slot_ctx:
            raise ValueError(f"prompt of {len(request.tokens)} tokens exceeds the slot context {self.per_slot_ctx}")
        if n > self.free_slots():
            raise ValueError(f"{n} sequences asked, {self.free_slots()} slots free")
        lead = self._choose(request)
        reuse = self._reusable(self._slots[lead], request)
        self._lib.llama_memory_seq_rm(self._mem, lead, reuse, -1)
        self._slots[lead].tokens = request.tokens[:reuse]
        self._slots[lead].exact = min(self._slots[lead].exact, reuse)
        first = self._claim(request, 0, lead, reuse)
        first._pending = request.tokens[reuse:]
        for i in range(1, n):
            first._copies.append(self._claim(request, i, self._choose(None), reuse))
        self._prefill.append(first)
        return [first, *first._copies]

    def _choose(self, request: SlotRequest | None) -> int:
        """The free slot with the longest reusable prefix; the lowest such, to keep live ids dense."""
        free = [i for i, slot in enumerate(self._slots) if slot.owner is None]
        if request is None:
            return free[0]
        return max(free, key=lambda i: (self._reusable(self._slots[i], request), -i))

    @staticmethod
    def _reusable(slot: _Slot, request: SlotRequest) -> int:
        prompt = request.tokens
        if request.reuse == "none":
            return 0
        shared = common_prefix(slot.tokens, prompt)
        if request.reuse == "all":
            return min(shared, len(prompt) - 1)  # the last prompt token is evaluated again: its logits are needed
        return max(0, min(shared, slot.exact, len(prompt) - 2))  # a suffix of 2+ tokens: one exact chunk

    def _claim(self, request: SlotRequest, index: int, slot: int, reuse: int) -> Sequence:
        seed = request.seed + index if request.seed is not None else random.getrandbits(32)
        seq = Sequence(request, index, slot, reuse, _sampler=self._sampler(request, seed & 0xFFFFFFFF))
        self._slots[slot].owner = seq
        return seq

    def _sampler(self, request: SlotRequest, seed: int) -> Any:
        return sampling.chain(self._lib, self._vocab, self.n_vocab, request, seed)

    # -- ending ----------------------------------------------------------------------------------------------

    def finish(self, seq: Sequence) -> None:
        """End a sequence (done, cancelled, failed): its slot is free again and keeps its tokens for reuse."""
        if seq._sampler is None:
            return
        self._lib.llama_sampler_free(seq._sampler)
        seq._sampler = None
        if seq in self._prefill:
            # Its copies wait for KV it will now never have: promote the first of them to evaluate the prompt.
            self._prefill.remove(seq)
            if seq._copies:
                heir, rest = seq._copies[0], seq._copies[1:]
                heir._copies, heir._pending, heir.cached_tokens = rest, list(seq.request.tokens), 0
                self._lib.llama_memory_seq_rm(self._mem, heir.slot, 0, -1)
                self._slots[heir.slot].tokens, self._slots[heir.slot].exact = [], 0
                self._prefill.append(heir)
        else:
            for group in self._prefill:
                if seq in group._copies:
                    group._copies.remove(seq)
        self._slots[seq.slot].owner = None

    def __enter__(self) -> "SlotEngine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Free every sampler, the batch and the context now."""
        if self._closed:
            return
        self._closed = True
        for slot in self._slots:
            if slot.owner is not None:
                self.finish(slot.owner)
        self._lib.llama_batch_free(self._batch)
        self._lib.llama_free(self._ctx)

    # -- stepping --------------------------------------------------------------------------------------------

    def generating(self) -> list[Sequence]:
        busy = [slot.owner for slot in self._slots if slot.owner is not None]
        return [s for s in busy if not s._pending and all(s not in p._copies for p in self._prefill)]

    def step(self) -> list[TokenOut]:
        """One decode of every generating sequence's last token, then prompt chunks of at most n_batch tokens."""
        if self._compact:
            self._compact_slots()
        out = self._decode_generating()
        budget = self.n_batch
        for seq in list(self._prefill):
            chunk = min(len(seq._pending), self.n_batch)
            if len(seq._pending) - chunk == 1 and chunk > 2:
                chunk -= 1  # never leave a one-token chunk: it would not be exact
            if chunk > budget:
                break
            budget -= chunk
            out += self._decode_prompt_chunk(seq, chunk)
        return out

    def _decode_generating(self) -> list[TokenOut]:
        seqs = sorted(self.generating(), key=lambda s: s.slot)
        if not seqs:
            return []
        for i, seq in enumerate(seqs):
            tokens = self._slots[seq.slot].tokens
            self._put(i, seq._last, len(tokens), seq.slot, True)
            tokens.append(seq._last)
        self._decode(len(seqs))
        return [self._sample(seq, i) for i, seq in enumerate(seqs)]

    def _decode_prompt_chunk(self, seq: Sequence, chunk: int) -> list[TokenOut]:
        slot = self._slots[seq.slot]
        tokens = slot.tokens
        for i, token in enumerate(seq._pending[:chunk]):
            self._put(i, token, len(tokens) + i, seq.slot, i == chunk - 1)
        self._decode(chunk)
        if chunk > 1 and slot.exact == len(tokens):
            slot.exact += chunk
        tokens += seq._pending[:chunk]
        del seq._pending[:chunk]
        if seq._pending:
            return []
        self._prefill.remove(seq)
        for copy in seq._copies:
            # Split KV: a cross-stream copy moves the whole stream, which is what a fresh choice needs.
            self._lib.llama_memory_seq_cp(self._mem, seq.slot, copy.slot, -1, -1)
            self._slots[copy.slot].tokens, self._slots[copy.slot].exact = list(tokens), slot.exact
        copies, seq._copies = seq._copies, []
        return [self._sample(s, chunk - 1) for s in (seq, *copies)]

    def _put(self, i: int, token: int, pos: int, seq_id: int, logits: bool) -> None:
        batch = self._batch
        batch.token[i] = token
        batch.pos[i] = pos
        batch.n_seq_id[i] = 1
        batch.seq_id[i][0] = seq_id
        batch.logits[i] = logits

    def _decode(self, n_tokens: int) -> None:
        self._batch.n_tokens = n_tokens
        rc = self._lib.llama_decode(self._ctx, self._batch)
        if rc != 0:
            raise RuntimeError(f"llama_decode failed ({rc})")

    def _sample(self, seq: Sequence, row: int) -> TokenOut:
        token = int(self._lib.llama_sampler_sample(seq._sampler, self._ctx, row))
        logprob, top = self._logprobs(row, token, seq.request) if seq.request.logprobs else (None, [])
        seq.generated += 1
        eog = bool(self._lib.llama_vocab_is_eog(self._vocab, token))
        reason: FinishReason | None = None
        if eog:
            reason = "stop"
        elif seq.generated >= seq.request.max_tokens or len(self._slots[seq.slot].tokens) >= self.per_slot_ctx:
            reason = "length"  # max_tokens, or no cell left in this slot to decode the token into
        seq._last = token
        if reason is not None:
            seq.finish_reason = reason
            self.finish(seq)
        return TokenOut(seq, token, eog, reason, logprob, top)

    def _logprobs(self, row: int, token: int, request: SlotRequest) -> tuple[float, list[tuple[int, float]]]:
        logits = self._lib.llama_get_logits_ith(self._ctx, row)
        return sampling.logprobs(logits, self.n_vocab, token, request.top_logprobs)

    def _compact_slots(self) -> None:
        """Move the highest generating sequence into a lower free slot: split KV batches only consecutive ids.

        Live ids {0, 2} decode as two ubatches, i.e. at solo cost each. The move copies the sequence's KV
        stream (exact, so its output is unchanged) and costs the free slot's cached prefix.
        """
        while True:
            live = sorted(s.slot for s in self.generating())
            free = [i for i, slot in enumerate(self._slots) if slot.owner is None]
            if not live or not free or free[0] > live[-1]:
                return
            src, dst = live[-1], free[0]
            seq = self._slots[src].owner
            assert seq is not None
            self._lib.llama_memory_seq_cp(self._mem, src, dst, -1, -1)
            self._slots[dst].tokens = list(self._slots[src].tokens)
            self._slots[dst].exact = self._slots[src].exact
            self._slots[dst].owner, self._slots[src].owner = seq, None
            seq.slot = dst
