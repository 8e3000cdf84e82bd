"""Load an embedding model once (the bundled all-MiniLM-L6-v2 by default), build its engine, warm it."""

import logging
from pathlib import Path

from shared.settings import Settings
from worker import llamalib
from worker.bert_gguf import bundled_embedding_zip, converted
from worker.embed_scheduler import EmbedScheduler
from worker.embedder import POOLING, Embedder

logger = logging.getLogger(__name__)

# Tokens packed into one decode. On CPU a decode of 32-64 tokens embeds the most per CPU-second; 256 or 512
# are slower than one input a decode (attention over a decode grows with the square of its tokens), see
# BENCHMARKS.md (embeddings).
PACK_TOKENS = 64


def embedding_model_path(settings: Settings) -> Path:
    """The GGUF to load: LLAMAQ_MODEL_PATH, or the bundled model converted once and cached."""
    if settings.model_path is not None:
        if not settings.model_path.is_file():
            raise SystemExit(f"llamaq worker: no model file at {settings.model_path} (LLAMAQ_MODEL_PATH)")
        return settings.model_path
    return converted(bundled_embedding_zip())


def load_embed_scheduler(settings: Settings) -> EmbedScheduler:
    """Load the GGUF for embeddings on this (the engine) thread; each input fits LLAMAQ_N_CTX and the model's own."""
    import llama_cpp

    llamalib.prepare()
    path = embedding_model_path(settings)
    probe = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    trained = int(probe.metadata.get(f"{probe.metadata.get('general.architecture')}.context_length") or settings.n_ctx)
    per_input = min(settings.n_ctx, trained)
    longest = max(len(probe.detokenize([token], special=True)) for token in range(probe.n_vocab()))
    del probe
    # A decode holds whole inputs: the context's batch fits the longest input; PACK_TOKENS bounds the packing.
    n_batch = max(per_input, PACK_TOKENS)
    llama = llama_cpp.Llama(
        model_path=str(path),
        embedding=True,
        pooling_type=POOLING[settings.pooling],
        n_ctx=n_batch,
        n_batch=n_batch,
        n_ubatch=n_batch,
        n_threads=settings.n_threads,
        verbose=False,
    )
    embedder = Embedder(llama, per_input, pack_tokens=min(settings.n_batch, PACK_TOKENS))
    embedder.embed([llama.tokenize(b"Hello")])  # the first pass after load is several times slower
    extra = {
        "model_path": str(path),
        "n_ctx": per_input,
        "dimensions": embedder.dimensions,
        "pack": embedder.pack_tokens,
    }
    logger.info("embedding model loaded", extra=extra)

    def tokenize(text: str) -> list[int]:
        return list(llama.tokenize(text.encode(), add_bos=True, special=False))

    return EmbedScheduler(embedder, tokenize, longest, wait_seconds=settings.job_timeout + settings.heartbeat_ttl)
