"""/v1/embeddings end to end: a real redis-server, the API, a real embedding worker on the converted all-MiniLM-L6-v2.

Clients: the official openai client (text, texts, token ids; float and base64), LangChain's
`OpenAIEmbeddings` and LiteLLM. Written against openai 3.3.0, langchain-openai 1.7.4, litellm 1.110.2.
"""

import base64
import concurrent.futures
import os
import re
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import openai
import pytest

from shared.settings import DEFAULT_EMBEDDING_MODEL_NAME
from tests.probes import error_of, wait_for
from tests.spec import assert_conforms
from tests.stack import MODEL, Stack, running_stack

pytestmark = pytest.mark.integration

EMBED = DEFAULT_EMBEDDING_MODEL_NAME
DIMENSIONS = 384
TEXTS = ["The cat sits on the mat.", "A kitten is resting on a rug.", "Quarterly revenue grew by twelve percent."]


@pytest.fixture(scope="module")
def embed_stack(tmp_path_factory: pytest.TempPathFactory, stack: Stack) -> Iterator[Stack]:
    """An API and one embedding worker beside the session's chat worker, on the same Redis."""
    with running_stack(stack.redis_url, tmp_path_factory.mktemp("embed-stack"), workers=0, embedding="true") as running:
        # LLAMAQ_MODEL_NAME unset: an embedding worker serves the bundled model under its own name.
        running.env.pop("LLAMAQ_MODEL_NAME", None)
        running.add_worker()
        running.env["LLAMAQ_MODEL_NAME"] = EMBED  # the name `wait_workers` looks for
        running.wait_workers(1)
        yield running


@pytest.fixture
def embed_client(embed_stack: Stack) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{embed_stack.base_url}/v1", api_key="unused", max_retries=0, timeout=60) as client:
        yield client


def _post(stack: Stack, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{stack.base_url}/v1/embeddings", json=body, timeout=60)


def test_text_and_texts_with_the_openai_client(embed_client: openai.OpenAI) -> None:
    one = embed_client.embeddings.create(model=EMBED, input=TEXTS[0])
    many = embed_client.embeddings.create(model=EMBED, input=TEXTS)
    assert len(one.data) == 1 and len(one.data[0].embedding) == DIMENSIONS
    assert [item.index for item in many.data] == [0, 1, 2]
    vectors = np.array([item.embedding for item in many.data])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert float(vectors[0] @ vectors[1]) > float(vectors[0] @ vectors[2]) + 0.3  # cat ~ kitten, not revenue
    assert float(np.dot(one.data[0].embedding, vectors[0])) > 0.99999  # alone or with others: the same vector
    assert many.model == EMBED and many.usage.prompt_tokens == many.usage.total_tokens > 3 * 3


def test_token_ids_embed_as_their_text(embed_client: openai.OpenAI) -> None:
    ids = [101, 1996, 4937, 7719, 2006, 1996, 13523, 1012, 102]  # "The cat sits on the mat." in the model's vocabulary
    text = embed_client.embeddings.create(model=EMBED, input=TEXTS[0]).data[0].embedding
    flat = embed_client.embeddings.create(model=EMBED, input=ids)
    nested = embed_client.embeddings.create(model=EMBED, input=[ids, [*ids[:4], 102]])
    assert float(np.dot(flat.data[0].embedding, text)) > 0.99999
    assert len(nested.data) == 2 and float(np.dot(nested.data[0].embedding, text)) > 0.99999
    assert flat.usage.prompt_tokens == len(ids) and nested.usage.prompt_tokens == len(ids) + 5


def test_float_and_base64_carry_the_same_vector(embed_stack: Stack, embed_client: openai.OpenAI) -> None:
    as_float = _post(embed_stack, {"model": EMBED, "input": TEXTS[:2], "encoding_format": "float"})
    as_base64 = _post(embed_stack, {"model": EMBED, "input": TEXTS[:2], "encoding_format": "base64"})
    assert as_float.status_code == as_base64.status_code == 200
    assert_conforms("CreateEmbeddingResponse", as_float.json())
    # The spec types `embedding` as an array of numbers only; a base64 answer is the same object with strings.
    assert_conforms("CreateEmbeddingResponse", {**as_base64.json(), "data": as_float.json()["data"]})
    assert all(isinstance(item["embedding"], str) for item in as_base64.json()["data"])
    for floats, packed in zip(as_float.json()["data"], as_base64.json()["data"], strict=True):
        decoded = np.frombuffer(base64.b64decode(packed["embedding"]), dtype="<f4")
        assert np.array_equal(decoded, np.array(floats["embedding"], dtype=np.float32))
    # The openai client asks for base64 unless told otherwise and decodes it; both give the same floats.
    default = embed_client.embeddings.create(model=EMBED, input=TEXTS[0]).data[0].embedding
    explicit = embed_client.embeddings.create(model=EMBED, input=TEXTS[0], encoding_format="float").data[0].embedding
    assert np.allclose(default, explicit, atol=1e-6)


def test_dimensions_only_at_the_models_own_size(embed_client: openai.OpenAI, embed_stack: Stack) -> None:
    same = embed_client.embeddings.create(model=EMBED, input="hi", dimensions=DIMENSIONS)
    assert len(same.data[0].embedding) == DIMENSIONS
    error = error_of(_post(embed_stack, {"model": EMBED, "input": "hi", "dimensions": 128}), param="dimensions")
    assert "384" in error["message"]


def test_bad_inputs_get_clear_errors(embed_stack: Stack) -> None:
    vocabulary = error_of(_post(embed_stack, {"model": EMBED, "input": [[101, 40000, 102]]}), param="input")
    assert "40000" in vocabulary["message"] and vocabulary["code"] == "invalid_token_id"
    # Longer than the model's 512 positions: refused, never truncated (token ids: the API knows at once).
    long_ids = error_of(_post(embed_stack, {"model": EMBED, "input": [[1996] * 600]}), param="input")
    assert long_ids["code"] == "context_length_exceeded" and "512" in long_ids["message"]
    # A long text the API cannot rule out by its bytes: the worker counts its tokens and refuses it.
    long_text = error_of(_post(embed_stack, {"model": EMBED, "input": "cat " * 600}), param="input")
    assert long_text["code"] == "context_length_exceeded"
    too_many = error_of(_post(embed_stack, {"model": EMBED, "input": ["a"] * 2049}), param="input")
    assert "2048" in too_many["message"]


def test_each_model_kind_only_gets_its_own_requests(embed_stack: Stack) -> None:
    chat = {"model": EMBED, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    reply = httpx.post(f"{embed_stack.base_url}/v1/chat/completions", json=chat, timeout=30)
    assert EMBED in error_of(reply, param="model", code="model_not_supported")["message"]
    assert MODEL in error_of(_post(embed_stack, {"model": MODEL, "input": "hi"}), param="model")["message"]


def test_waiting_requests_are_embedded_together(embed_stack: Stack) -> None:
    """Requests that arrive while the worker is busy are embedded in one batch: the worker logs how many inputs."""
    body = {"model": EMBED, "input": [f"{text} Number {i}." for i in range(8) for text in TEXTS]}
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda _: _post(embed_stack, body), range(12)))
    assert all(reply.status_code == 200 for reply in replies)
    first = replies[0].json()["data"]
    assert all(np.allclose(r.json()["data"][5]["embedding"], first[5]["embedding"], atol=1e-4) for r in replies)
    assert embed_stack.logs is not None

    def together() -> list[int] | None:
        logged = (embed_stack.logs / "worker0.log").read_text()  # type: ignore[operator]
        counts = [int(n) for n in re.findall(r"embedded_together=(\d+)", logged)]
        return counts if any(count > len(body["input"]) for count in counts) else None

    counts = wait_for(together, "a batch holding more than one request's inputs", timeout=10)
    assert max(counts) % len(body["input"]) == 0  # whole requests, several at once


def test_background_job_and_batch(embed_stack: Stack, embed_client: openai.OpenAI) -> None:
    job = httpx.post(
        f"{embed_stack.base_url}/v1/jobs",
        json={"endpoint": "/v1/embeddings", "body": {"model": EMBED, "input": TEXTS}},
        timeout=30,
    ).json()

    def finished() -> dict[str, Any] | None:
        record = httpx.get(f"{embed_stack.base_url}/v1/jobs/{job['id']}", timeout=10).json()
        return record if record["status"] == "completed" else None

    record = wait_for(finished, "the background embedding job", timeout=30)
    assert record["endpoint"] == "/v1/embeddings" and len(record["response"]["data"]) == 3
    line = b'{"custom_id": "a", "method": "POST", "url": "/v1/embeddings", "body": {"model": "%s", "input": "hi"}}\n'
    upload = embed_client.files.create(file=("in.jsonl", line % EMBED.encode()), purpose="batch")
    batch = embed_client.batches.create(input_file_id=upload.id, endpoint="/v1/embeddings", completion_window="24h")

    def done() -> Any:
        current = embed_client.batches.retrieve(batch.id)
        return current if current.status in ("completed", "failed") else None

    ended = wait_for(done, "the embeddings batch", timeout=60, interval=0.2)
    assert ended.status == "completed" and ended.output_file_id
    output = embed_client.files.content(ended.output_file_id).text
    assert '"object":"embedding"' in output.replace(" ", "") and '"custom_id":"a"' in output.replace(" ", "")


def test_metrics_count_embedding_jobs_and_tokens(embed_stack: Stack, embed_client: openai.OpenAI) -> None:
    embed_client.embeddings.create(model=EMBED, input=TEXTS)
    text = httpx.get(f"{embed_stack.base_url}/metrics", timeout=10).text
    assert re.search(rf'llamaq_jobs_total\{{[^}}]*model="{EMBED}"[^}}]*state="completed"[^}}]*\}} [1-9]', text)
    assert re.search(rf'llamaq_prompt_tokens_total\{{[^}}]*model="{EMBED}"[^}}]*\}} [1-9]', text)
    assert re.search(r'llamaq_http_requests_total\{[^}]*route="/v1/embeddings"', text), [
        line for line in text.splitlines() if "http_requests_total" in line
    ]


def test_langchain_and_litellm(embed_stack: Stack) -> None:
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # LiteLLM otherwise fetches its price map at import
    import litellm
    from langchain_openai import OpenAIEmbeddings

    base = f"{embed_stack.base_url}/v1"
    # LangChain tokenizes with OpenAI's tiktoken by default and sends those ids, which mean nothing to another
    # model's vocabulary; with check_embedding_ctx_length=False it sends the text.
    embeddings = OpenAIEmbeddings(model=EMBED, base_url=base, api_key="unused", check_embedding_ctx_length=False)
    documents = embeddings.embed_documents(TEXTS)
    query = embeddings.embed_query(TEXTS[1])
    assert len(documents) == 3 and len(query) == DIMENSIONS
    assert float(np.dot(query, documents[1])) > 0.9999
    reply = litellm.embedding(model=f"openai/{EMBED}", input=TEXTS[:2], api_base=base, api_key="unused")
    assert len(reply.data) == 2 and len(reply.data[0]["embedding"]) == DIMENSIONS
    assert float(np.dot(reply.data[0]["embedding"], documents[0])) > 0.9999
    assert reply.usage.prompt_tokens > 0


def test_the_readme_example(embed_client: openai.OpenAI) -> None:
    reply = embed_client.embeddings.create(
        model="all-MiniLM-L6-v2", input=["The cat sits on the mat.", "A kitten is resting on a rug."]
    )
    assert (len(reply.data[0].embedding), reply.usage.prompt_tokens) == (384, 19)
