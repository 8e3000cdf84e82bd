"""POST /v1/completions (legacy text completion), streamed and not, through the same queue and worker."""

from typing import Any

import openai
import pytest

from tests.probes import chunks, data_lines
from tests.spec import errors_against
from tests.stack import MODEL, Stack

pytestmark = pytest.mark.integration

COUNT = "1, 2, 3, 4,"


def complete(client: openai.OpenAI, **fields: Any) -> Any:
    fields.setdefault("prompt", COUNT)
    fields.setdefault("max_tokens", 12)
    return client.completions.create(model=MODEL, **fields)


def conforms_as_chunk(chunk: dict[str, Any]) -> list[str]:
    """Stream chunks share `CreateCompletionResponse`'s shape, except for two nulls the spec does not allow.

    Like OpenAI's, they carry `finish_reason: null` until the last choice and `usage: null` before the
    usage chunk (with `include_usage`); both are checked by the tests themselves, the rest by the spec.
    """
    final = {key: value for key, value in chunk.items() if not (key == "usage" and value is None)}
    final["choices"] = [{**c, "finish_reason": c["finish_reason"] or "length"} for c in chunk["choices"]]
    return errors_against("CreateCompletionResponse", final)


def test_completion_conforms_to_the_spec(client: openai.OpenAI) -> None:
    raw = client.completions.with_raw_response.create(model=MODEL, prompt=COUNT, max_tokens=6, seed=1)
    body = raw.http_response.json()
    assert errors_against("CreateCompletionResponse", body) == []
    reply = raw.parse()
    assert reply.object == "text_completion" and reply.id.startswith("cmpl-") and reply.model == MODEL
    assert reply.choices[0].finish_reason == "length" and reply.choices[0].text
    assert reply.usage is not None and reply.usage.completion_tokens == 6
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_raw_stream_chunks_and_done(stack: Stack, client: openai.OpenAI) -> None:
    whole = complete(client, seed=2)
    body = {"model": MODEL, "prompt": COUNT, "max_tokens": 12, "seed": 2, "stream": True}
    parts = chunks(data_lines(stack.base_url, "/v1/completions", {**body, "stream_options": {"include_usage": True}}))
    for chunk in parts:
        assert conforms_as_chunk(chunk) == []
    *with_choices, usage_chunk = parts
    assert usage_chunk["choices"] == [] and usage_chunk["usage"] == whole.usage.model_dump(exclude_none=True)
    assert with_choices[-1]["choices"][0]["finish_reason"] == "length"
    assert {c["choices"][0]["finish_reason"] for c in with_choices[:-1]} == {None}
    assert "".join(c["choices"][0]["text"] for c in with_choices) == whole.choices[0].text
    plain = chunks(data_lines(stack.base_url, "/v1/completions", body))
    assert all("usage" not in chunk or chunk["usage"] is None for chunk in plain)


def test_stream_through_the_client(client: openai.OpenAI) -> None:
    whole = complete(client, seed=3, max_tokens=10)
    parts = list(complete(client, seed=3, max_tokens=10, stream=True, stream_options={"include_usage": True}))
    assert "".join(p.choices[0].text for p in parts if p.choices) == whole.choices[0].text
    assert parts[-1].usage is not None and parts[-1].usage.completion_tokens == 10
    assert parts[-2].choices[0].finish_reason == "length"


def test_stop_cuts_streamed_or_not(client: openai.OpenAI) -> None:
    full = complete(client, seed=1, temperature=0, max_tokens=20).choices[0].text
    assert " 7," in full, full
    expected = full[: full.index("7")]
    reply = complete(client, seed=1, temperature=0, max_tokens=20, stop=["7"])
    assert reply.choices[0].text == expected and reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None and reply.usage.completion_tokens < 20
    parts = list(complete(client, seed=1, temperature=0, max_tokens=20, stop="7", stream=True))
    assert "".join(p.choices[0].text for p in parts) == expected
    assert parts[-1].choices[0].finish_reason == "stop"


def test_a_one_element_prompt_list_is_the_same_prompt(client: openai.OpenAI) -> None:
    assert complete(client, prompt=[COUNT], seed=4).choices[0].text == complete(client, seed=4).choices[0].text
    with pytest.raises(openai.BadRequestError) as caught:
        complete(client, prompt=["one", "two"])
    assert caught.value.param == "prompt"


@pytest.mark.parametrize(("field", "value"), [("echo", True), ("suffix", "!"), ("best_of", 2)])
def test_unsupported_legacy_fields_are_refused_by_name(client: openai.OpenAI, field: str, value: Any) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        complete(client, max_tokens=2, **{field: value})
    assert caught.value.param == field and field in caught.value.message


def test_max_tokens_defaults_to_sixteen_even_when_null(client: openai.OpenAI) -> None:
    unset = client.completions.create(model=MODEL, prompt=COUNT, seed=1, temperature=0)
    null = complete(client, max_tokens=None, seed=1, temperature=0)
    for reply in (unset, null):
        assert reply.usage is not None and reply.usage.completion_tokens == 16
        assert reply.choices[0].finish_reason == "length"
    assert null.choices[0].text == unset.choices[0].text
