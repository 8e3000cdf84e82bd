"""`LLAMAQ_POOLING` on a decoder model (the bundled SmolLM2, which pools nothing by itself)."""

from typing import Any

import numpy as np
import pytest

from worker.embedder import POOLING, Embedder
from worker.model import bundled_model_path

pytestmark = pytest.mark.integration

TEXTS = ["The cat sits on the mat.", "A kitten is resting on a rug.", "Revenue grew by twelve percent."]


def _llama(pooling: str) -> Any:
    import llama_cpp

    return llama_cpp.Llama(
        model_path=str(bundled_model_path()), embedding=True, pooling_type=POOLING[pooling],
        n_ctx=512, n_batch=512, n_ubatch=512, n_threads=1, verbose=False,
    )  # fmt: skip


def test_a_model_that_pools_nothing_needs_a_pooling() -> None:
    llama = _llama("auto")
    try:
        with pytest.raises(SystemExit, match="LLAMAQ_POOLING"):
            Embedder(llama, per_input=512)
    finally:
        llama.close()


@pytest.mark.parametrize("pooling", ["mean", "last"])
def test_pooled_decoder_vectors_are_the_same_batched_or_alone(pooling: str) -> None:
    llama = _llama(pooling)
    try:
        embedder = Embedder(llama, per_input=512)
        tokens = [llama.tokenize(text.encode()) for text in TEXTS]
        together = embedder.embed(tokens)
        alone = np.concatenate([embedder.embed([each]) for each in tokens])
    finally:
        llama.close()
    assert together.shape == (3, 576) and embedder.decodes == 4
    assert min(float(a @ b) for a, b in zip(together, alone, strict=True)) > 0.9999
    assert float(together[0] @ together[1]) > float(together[0] @ together[2])
