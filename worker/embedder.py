"""`Embedder`: many token sequences embedded in as few `llama_decode` calls as fit, one sequence id each.

A decode holds at most `pack_tokens` tokens and `n_seq_max` sequences, or one longer input alone; every
sequence sits whole in one decode (an encoder attends over all of its tokens at once), so the context's
own batch is as large as the longest input. Packing many tokens into one decode costs more than it saves:
attention over a decode grows with the square of its tokens (worker/embed_model.py `PACK_TOKENS`).
Vectors come back pooled by llama.cpp (the GGUF's pooling or `LLAMAQ_POOLING`) and L2-normalised, as
OpenAI's embeddings are.
"""

from collections.abc import Sequence
from typing import Any

import numpy as np

# LLAMAQ_POOLING -> llama.cpp's pooling type (`auto`: what the GGUF says).
POOLING = {"auto": -1, "mean": 1, "cls": 2, "last": 3}


class Embedder:
    """Owns the llama context of an embedding worker; called from the engine thread only."""

    def __init__(self, llama: Any, per_input: int, pack_tokens: int | None = None) -> None:
        import llama_cpp

        self.llama = llama
        self.per_input = per_input  # longest input in tokens
        self.n_batch = int(llama.n_batch)
        self.pack_tokens = min(pack_tokens or self.n_batch, self.n_batch)
        self.n_seq_max = int(llama.context_params.n_seq_max)
        self.dimensions = int(llama.n_embd())
        self.n_vocab = int(llama.n_vocab())
        if llama_cpp.llama_pooling_type(llama._ctx.ctx) == llama_cpp.LLAMA_POOLING_TYPE_NONE:
            raise SystemExit("llamaq worker: the model pools nothing; set LLAMAQ_POOLING to mean, cls or last")
        self.decodes = 0  # llama_decode calls made, read by tests and the benchmark

    def embed(self, inputs: Sequence[Sequence[int]]) -> np.ndarray:
        """One unit-length float32 row per input, in order."""
        rows: list[np.ndarray] = []
        group: list[Sequence[int]] = []
        tokens = 0
        for each in inputs:
            if group and (tokens + len(each) > self.pack_tokens or len(group) >= self.n_seq_max):
                rows.append(self._decode(group))
                group, tokens = [], 0
            group.append(each)
            tokens += len(each)
        if group:
            rows.append(self._decode(group))
        if not rows:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        vectors = np.concatenate(rows)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return (vectors / np.where(norms == 0, 1, norms)).astype(np.float32)

    def _decode(self, group: list[Sequence[int]]) -> np.ndarray:
        import llama_cpp

        llama = self.llama
        llama._ctx.kv_cache_clear()
        llama._batch.reset()
        for seq, tokens in enumerate(group):
            llama._batch.add_sequence(tokens, seq, True)
        self.decodes += 1
        llama._ctx.decode(llama._batch)
        out = np.empty((len(group), self.dimensions), dtype=np.float32)
        for seq in range(len(group)):
            pointer = llama_cpp.llama_get_embeddings_seq(llama._ctx.ctx, seq)
            out[seq] = np.ctypeslib.as_array(pointer, shape=(self.dimensions,))
        llama._batch.reset()
        return out
