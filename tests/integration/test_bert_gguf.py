"""The GGUF made from the bundled all-MiniLM-L6-v2 against an independent numpy forward pass of its safetensors."""

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tokenizers import Tokenizer

from tests.bert_reference import encode
from worker.bert_gguf import bundled_embedding_zip, converted, read_model
from worker.embedder import Embedder

pytestmark = pytest.mark.integration

SENTENCES = [
    "The cat sits on the mat.",
    "A kitten is resting on a rug.",
    "Quarterly revenue grew by twelve percent.",
    "Héllo, wörld! Don't panic: 3.14 isn't π.",
]


@pytest.fixture(scope="module")
def model() -> dict[str, Any]:
    return read_model(bundled_embedding_zip())


@pytest.fixture(scope="module")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Embedder]:
    import llama_cpp

    started = time.monotonic()
    path = converted(bundled_embedding_zip(), cache_dir=tmp_path_factory.mktemp("models"))
    print(f"converted in {time.monotonic() - started:.2f} s")
    llama = llama_cpp.Llama(model_path=str(path), embedding=True, n_ctx=512, n_batch=512, n_ubatch=512, verbose=False)
    yield Embedder(llama, per_input=512)
    llama.close()


def test_the_cached_copy_is_reused(tmp_path: Path) -> None:
    first = converted(bundled_embedding_zip(), cache_dir=tmp_path)
    stamp = first.stat().st_mtime_ns
    assert converted(bundled_embedding_zip(), cache_dir=tmp_path) == first
    assert first.stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no temporary file left behind


def test_tokens_match_the_reference_tokenizer(embedder: Embedder, model: dict[str, Any]) -> None:
    reference = Tokenizer.from_str(json.dumps(model["tokenizer"]))
    reference.no_padding()
    reference.no_truncation()
    for sentence in SENTENCES:
        assert embedder.llama.tokenize(sentence.encode()) == reference.encode(sentence).ids


def test_embeddings_match_a_numpy_forward_pass(embedder: Embedder, model: dict[str, Any]) -> None:
    tokens = [embedder.llama.tokenize(sentence.encode()) for sentence in SENTENCES]
    vectors = embedder.embed(tokens)
    assert embedder.decodes == 1  # all four sentences in one decode
    assert vectors.shape == (len(SENTENCES), 384)
    cosines = [float(np.dot(vector, encode(model, each))) for vector, each in zip(vectors, tokens, strict=True)]
    print("cosine against the reference:", [round(c, 7) for c in cosines])
    assert min(cosines) >= 0.999
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_similar_sentences_score_higher(embedder: Embedder) -> None:
    cat, kitten, revenue, _ = embedder.embed([embedder.llama.tokenize(s.encode()) for s in SENTENCES])
    assert float(cat @ kitten) > float(cat @ revenue) + 0.3


def test_batched_equals_alone(embedder: Embedder) -> None:
    tokens = [embedder.llama.tokenize(sentence.encode()) for sentence in SENTENCES]
    together = embedder.embed(tokens)
    alone = np.concatenate([embedder.embed([each]) for each in tokens])
    # Float sums in another order: the same vectors to within rounding, not bit for bit.
    assert min(float(a @ b) for a, b in zip(together, alone, strict=True)) > 0.99999


def test_inputs_beyond_one_decode_are_split_into_several(embedder: Embedder) -> None:
    tokens = [embedder.llama.tokenize(f"Sentence number {i} of many.".encode()) for i in range(80)]
    before = embedder.decodes
    vectors = embedder.embed(tokens)
    needed = -(-sum(map(len, tokens)) // embedder.pack_tokens)  # at least this many full decodes
    assert needed >= 2 and needed <= embedder.decodes - before <= needed + 1
    assert vectors.shape == (80, 384)
    alone = embedder.embed([tokens[-1]])[0]
    assert float(vectors[-1] @ alone) > 0.99999  # the last input, in the last decode, is still itself


def test_packing_stops_at_pack_tokens_and_a_longer_input_goes_alone(embedder: Embedder) -> None:
    packing = Embedder(embedder.llama, per_input=512, pack_tokens=24)
    short = [embedder.llama.tokenize(sentence.encode()) for sentence in SENTENCES[:3]]  # 9 to 10 tokens each
    long = embedder.llama.tokenize(("many words " * 20).encode())
    vectors = packing.embed([*short, long, short[0]])
    # [9, 10] | [10] | [42 alone] | [9]: a decode never passes 24 tokens unless one input alone does.
    assert packing.decodes == 4
    assert float(vectors[0] @ vectors[4]) > 0.99999
