"""shared/schemas.py: every supported OpenAI field is accepted; everything else is refused, never dropped."""

from typing import Any

import pytest
from pydantic import ValidationError

from shared import defaults
from shared.schemas import ChatCompletionRequest, CompletionRequest

LONE_SURROGATE = "bad \ud800 text"


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": "Hi"}], **fields}


def completion(**fields: Any) -> dict[str, Any]:
    return {"model": "m", "prompt": "Once", **fields}


def refused(model: type, body: dict[str, Any]) -> dict[str, Any]:
    """The first validation error of `body`; fails the test when it is accepted."""
    with pytest.raises(ValidationError) as caught:
        model.model_validate(body)
    return caught.value.errors()[0]


def test_every_supported_chat_field_is_accepted() -> None:
    body = chat(
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": "Answer in English."},
            {"role": "user", "content": [{"type": "text", "text": "Hello"}], "name": "ann"},
            {"role": "assistant", "content": "Hi!"},
            {"role": "user", "content": "Bye"},
        ],
        max_tokens=10, max_completion_tokens=20, temperature=0.5, top_p=0.9, stop=["\n", "###"], seed=42,
        presence_penalty=0.1, frequency_penalty=-0.1, stream=True, stream_options={"include_usage": True},
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
        user="user-1", n=1,
    )  # fmt: skip
    request = ChatCompletionRequest.model_validate(body)
    assert [m.role for m in request.messages] == ["system", "developer", "user", "assistant", "user"]
    assert request.messages[2].text() == "Hello"
    assert request.token_limit() == 20
    assert request.stop_list() == ["\n", "###"]
    assert request.stream_options is not None and request.stream_options.include_usage
    assert request.response_format is not None
    dumped = request.response_format.model_dump(by_alias=True)
    assert dumped["json_schema"]["schema"] == {"type": "object"}
    assert (request.temperature, request.top_p, request.seed, request.user) == (0.5, 0.9, 42, "user-1")


def test_every_supported_completion_field_is_accepted() -> None:
    body = completion(
        prompt=["Once"], max_tokens=0, temperature=0, top_p=1, stop="\n", seed=0, presence_penalty=2,
        frequency_penalty=-2, stream=False, stream_options={"include_usage": False}, user="u", n=1,
    )  # fmt: skip
    request = CompletionRequest.model_validate(body)
    assert request.prompt_text() == "Once"
    assert request.token_limit() == 0
    assert request.stop_list() == ["\n"]


@pytest.mark.parametrize("fmt", [{"type": "text"}, {"type": "json_object"}])
def test_text_and_json_object_response_formats(fmt: dict[str, str]) -> None:
    request = ChatCompletionRequest.model_validate(chat(response_format=fmt))
    assert request.response_format is not None and request.response_format.type == fmt["type"]


def test_defaults() -> None:
    request = CompletionRequest.model_validate(completion())
    assert request.max_tokens == 16
    assert request.stop_list() == []
    chat_request = ChatCompletionRequest.model_validate(chat())
    assert chat_request.token_limit() is None
    assert chat_request.stream is False


def test_max_completion_tokens_wins_over_max_tokens() -> None:
    assert ChatCompletionRequest.model_validate(chat(max_tokens=5, max_completion_tokens=7)).token_limit() == 7
    assert ChatCompletionRequest.model_validate(chat(max_tokens=5)).token_limit() == 5


def test_integers_are_accepted_where_numbers_are_expected() -> None:
    request = ChatCompletionRequest.model_validate(chat(temperature=1, top_p=1))
    assert (request.temperature, request.top_p) == (1.0, 1.0)


def test_text_parts_are_joined() -> None:
    content = [{"type": "text", "text": "Hello, "}, {"type": "text", "text": "world"}]
    request = ChatCompletionRequest.model_validate(chat(messages=[{"role": "user", "content": content}]))
    assert request.messages[0].text() == "Hello, world"


@pytest.mark.parametrize("n", [0, 17])
def test_n_outside_one_to_sixteen_is_refused(n: int) -> None:
    assert refused(ChatCompletionRequest, chat(n=n))["loc"] == ("n",)
    assert refused(CompletionRequest, completion(n=n))["loc"] == ("n",)


def test_n_logprobs_and_top_logprobs_are_accepted() -> None:
    request = ChatCompletionRequest.model_validate(chat(n=3, logprobs=True, top_logprobs=2))
    assert (request.n, request.logprob_request()) == (3, (True, 2))
    assert CompletionRequest.model_validate(completion(logprobs=2)).logprob_request() == (True, 2)
    assert CompletionRequest.model_validate(completion()).logprob_request() == (False, 0)


def test_top_logprobs_without_logprobs_is_refused() -> None:
    assert "top_logprobs requires logprobs" in refused(ChatCompletionRequest, chat(top_logprobs=2))["msg"]


TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
# A value of each not-implemented field that asks for something other than the default.
CHAT_NON_DEFAULT: dict[str, Any] = {
    "logit_bias": {"50256": -100},
    "functions": [{"name": "f", "parameters": {}}],
    "function_call": {"name": "f"},
    "store": True,
    "metadata": {"k": "v"},
    "audio": {"voice": "alloy", "format": "mp3"},
    "modalities": ["text", "audio"],
    "prediction": {"type": "content", "content": "x"},
    "reasoning_effort": "high",
    "verbosity": "low",
    "service_tier": "flex",
    "web_search_options": {},
    "moderation": {"model": "omni"},
    "prompt_cache_retention": "24h",
    "prompt_cache_options": {},
}
COMPLETION_NON_DEFAULT: dict[str, Any] = {
    "logit_bias": {"1": 5},
    "echo": True,
    "best_of": 2,
    "suffix": "end",
}


def test_every_default_only_field_has_a_non_default_case() -> None:
    assert set(CHAT_NON_DEFAULT) == set(defaults.CHAT)
    assert set(COMPLETION_NON_DEFAULT) == set(defaults.COMPLETION)


@pytest.mark.parametrize(("field", "rule"), sorted(defaults.CHAT.items()))
def test_chat_fields_sent_with_their_default_are_accepted_and_others_refused(
    field: str, rule: defaults.DefaultOnly
) -> None:
    for value in rule.values:
        request = ChatCompletionRequest.model_validate(chat(**{field: value}))
        assert field not in request.model_fields_set
    body = chat(**{field: CHAT_NON_DEFAULT[field]})
    error = refused(ChatCompletionRequest, body)
    assert (error["type"], error["ctx"]["field"]) == (defaults.UNSUPPORTED, field)
    assert f"'{field}' is not supported by this server; only its default ({rule.says})" in error["msg"]


@pytest.mark.parametrize(("field", "rule"), sorted(defaults.COMPLETION.items()))
def test_completion_fields_sent_with_their_default_are_accepted_and_others_refused(
    field: str, rule: defaults.DefaultOnly
) -> None:
    for value in rule.values:
        CompletionRequest.model_validate(completion(**{field: value}))
    error = refused(CompletionRequest, completion(**{field: COMPLETION_NON_DEFAULT[field]}))
    assert (error["type"], error["ctx"]["field"]) == (defaults.UNSUPPORTED, field)


def test_defaults_compare_with_their_types() -> None:
    assert refused(ChatCompletionRequest, chat(store=0))["ctx"]["field"] == "store"
    assert refused(CompletionRequest, completion(best_of=True))["ctx"]["field"] == "best_of"


def test_tools_and_every_tool_choice_are_accepted() -> None:
    named = {"type": "function", "function": {"name": "f"}}
    for choice in (None, "none", "auto", "required", named):
        request = ChatCompletionRequest.model_validate(
            chat(tools=[TOOL], tool_choice=choice, parallel_tool_calls=False)
        )
        assert request.tools is not None and request.tools[0].function.name == "f"
    ChatCompletionRequest.model_validate(chat(tool_choice="none", tools=[], parallel_tool_calls=True))


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"tool_choice": "required"}, "'required' needs tools"),
        ({"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "g"}}}, "'g' is not among"),
        ({"tools": [TOOL, TOOL]}, "each tool needs a name of its own"),
        ({"tools": [{"type": "function", "function": {"name": "bad name"}}]}, "should match pattern"),
        ({"tools": [{"type": "custom", "custom": {"name": "f"}}]}, "'function'"),
        ({"tool_choice": "sometimes", "tools": [TOOL]}, "'none', 'auto' or 'required'"),
    ],
)
def test_tools_that_cannot_be_honoured_are_refused(fields: dict[str, Any], says: str) -> None:
    assert says in refused(ChatCompletionRequest, chat(**fields))["msg"]


def test_calls_and_tool_results_are_history() -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}
    history = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "content": "42", "tool_call_id": "call_1"},
    ]
    request = ChatCompletionRequest.model_validate(chat(messages=history, tools=[TOOL]))
    calls = request.messages[1].tool_calls
    assert calls is not None and calls[0].function.arguments == '{"x": 1}'
    assert request.messages[2].tool_call_id == "call_1"
    misplaced = [{"role": "user", "content": "go", "tool_calls": [call]}]
    assert (
        "only assistant messages may carry tool_calls"
        in refused(ChatCompletionRequest, chat(messages=misplaced))["msg"]
    )


def test_unknown_fields_are_refused_in_the_request_and_ignored_in_messages() -> None:
    assert refused(ChatCompletionRequest, chat(foo=1))["loc"] == ("foo",)
    # Clients annotate the history they send back (LiteLLM: provider_specific_fields); vLLM ignores such keys.
    message = {"role": "user", "content": "x", "provider_specific_fields": {"a": 1}}
    assert ChatCompletionRequest.model_validate(chat(messages=[message])).messages[0].text() == "x"
    options = {"include_usage": True, "chunk": 1}
    assert refused(ChatCompletionRequest, chat(stream_options=options))["loc"] == ("stream_options", "chunk")


@pytest.mark.parametrize(
    "part",
    [
        {"type": "image_url", "image_url": {"url": "http://x"}},
        {"type": "input_audio", "input_audio": {"data": "", "format": "wav"}},
        {"type": "text"},
    ],
)
def test_non_text_or_broken_content_parts_are_refused(part: dict[str, Any]) -> None:
    error = refused(ChatCompletionRequest, chat(messages=[{"role": "user", "content": [part]}]))
    assert error["loc"][:3] == ("messages", 0, "content")


@pytest.mark.parametrize("role", ["function", "robot"])
def test_roles_other_than_system_developer_user_assistant_tool_are_refused(role: str) -> None:
    error = refused(ChatCompletionRequest, chat(messages=[{"role": role, "content": "x"}]))
    assert error["loc"] == ("messages", 0, "role")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("temperature", "0.5"),
        ("temperature", 2.5),
        ("temperature", -0.1),
        ("top_p", 1.5),
        ("max_tokens", 0),
        ("max_tokens", 1.5),
        ("max_tokens", True),
        ("max_completion_tokens", "10"),
        ("stream", "true"),
        ("stream", 1),
        ("seed", 2**64),
        ("presence_penalty", 3),
        ("frequency_penalty", -3),
        ("stop", ["a", "b", "c", "d", "e"]),
        ("stop", ""),
        ("stop", ["a", ""]),
        ("stop", "x" * 257),
        ("stop", ["a", "x" * 257]),
        ("stop", 5),
        ("user", 7),
        ("model", ""),
        ("model", 1),
    ],
)
def test_wrong_types_and_out_of_range_values_are_refused(field: str, value: Any) -> None:
    assert refused(ChatCompletionRequest, chat(**{field: value}))["loc"][0] == field


def test_missing_required_fields_are_refused() -> None:
    assert refused(ChatCompletionRequest, {"model": "m"})["loc"] == ("messages",)
    assert refused(ChatCompletionRequest, {"messages": []})["type"] in ("missing", "too_short")
    assert refused(CompletionRequest, {"model": "m"})["loc"] == ("prompt",)
    assert refused(ChatCompletionRequest, chat(messages=[]))["loc"] == ("messages",)
    assert refused(ChatCompletionRequest, chat(messages=[{"role": "user"}]))["loc"] == ("messages", 0, "content")


@pytest.mark.parametrize("prompt", [["a", "b"], [], [1, 2, 3], [[1, 2]]])
def test_only_one_text_prompt_is_accepted(prompt: Any) -> None:
    assert refused(CompletionRequest, completion(prompt=prompt))["loc"][0] == "prompt"


def test_unknown_response_format_type_is_refused() -> None:
    error = refused(ChatCompletionRequest, chat(response_format={"type": "xml"}))
    assert error["loc"][0] == "response_format"


def test_json_schema_format_needs_a_name() -> None:
    fmt = {"type": "json_schema", "json_schema": {"schema": {}}}
    assert refused(ChatCompletionRequest, chat(response_format=fmt))["loc"][:2] == ("response_format", "json_schema")


@pytest.mark.parametrize(
    "body",
    [
        chat(messages=[{"role": "user", "content": LONE_SURROGATE}]),
        chat(messages=[{"role": "user", "content": [{"type": "text", "text": LONE_SURROGATE}]}]),
        chat(stop=[LONE_SURROGATE]),
        chat(user=LONE_SURROGATE),
        chat(model=LONE_SURROGATE),
    ],
)
def test_lone_surrogates_are_refused_in_chat(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as caught:
        ChatCompletionRequest.model_validate(body)
    # Constrained strings are refused by pydantic itself (string_unicode), the others by the schema.
    kinds = {error["type"] for error in caught.value.errors()}
    assert kinds & {"value_error", "string_unicode"}


def test_lone_surrogates_are_refused_in_prompts() -> None:
    with pytest.raises(ValidationError, match="lone surrogate"):
        CompletionRequest.model_validate(completion(prompt=LONE_SURROGATE))


def test_valid_surrogate_pairs_and_non_ascii_text_are_accepted() -> None:
    request = ChatCompletionRequest.model_validate(chat(messages=[{"role": "user", "content": "llama 🦙 é ü"}]))
    assert request.messages[0].text() == "llama 🦙 é ü"
