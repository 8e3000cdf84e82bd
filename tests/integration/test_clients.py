"""The client frameworks people point at OpenAI-compatible servers, each in a two-turn conversation.

Every conversation hands the framework's own reply back to it as history, the way its users do, so the
fields a framework keeps on an assistant message (`"refusal": null`, `"tool_calls": null`, ...) and the
request fields it sends with their default values (`"logprobs": null`, `"n": 1`, ...) reach the server.
The model is tiny and its text nonsense: the tests check shapes, roles, finish reasons and types, never
wording.

Written against langchain-openai 1.7.4 (langchain-core 1.8.3), litellm 1.110.2, instructor 1.17.0,
pydantic-ai-slim 2.38.0 and openai 3.3.0.
"""

import asyncio
import functools
import operator
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import instructor
import openai
import pytest
import tiktoken.load
from instructor.core import InstructorRetryException
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_openai import ChatOpenAI, OpenAI
from pydantic import BaseModel, Field
from pydantic_ai import Agent
from pydantic_ai.exceptions import ModelHTTPError
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from tests.stack import MODEL, running_stack

# LiteLLM fetches its model price map from GitHub at import unless told to use the copy it ships.
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

import litellm

pytestmark = [
    pytest.mark.integration,
    # LiteLLM's first call imports its providers' TypedDicts, and pydantic warns about their `ReadOnly` items.
    pytest.mark.filterwarnings("ignore:Items? .* on TypedDict class .* using the `ReadOnly` qualifier:UserWarning"),
    # LiteLLM's stream handler reads `model_fields` off a Delta instance, which pydantic 2.11 deprecated.
    pytest.mark.filterwarnings(
        "ignore:Accessing the 'model_(computed_)?fields' attribute on the instance is deprecated:DeprecationWarning"
    ),
]

FINISHED = {"stop", "length"}
GREETING = "Hi, who are you?"
FOLLOW_UP = "Tell me more."


class Person(BaseModel):
    name: str = Field(max_length=20)
    age: int


@pytest.fixture(autouse=True)
def no_tiktoken_download(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail at once if a framework asks tiktoken for an encoding it would download.

    tiktoken fetches an encoding from the internet the first time one is used, which cannot work here.
    LiteLLM points TIKTOKEN_CACHE_DIR at the encodings it ships (and loads cl100k_base from there at
    import), and LangChain counts tokens only when asked to (`get_num_tokens`, `max_tokens=-1`), so
    nothing below should reach the network: this makes sure of it.
    """
    local = tiktoken.load.read_file

    def read_file(blobpath: str) -> bytes:
        if "://" in blobpath:
            raise AssertionError(f"tiktoken tried to download {blobpath}")
        return local(blobpath)

    monkeypatch.setattr(tiktoken.load, "read_file", read_file)


def chat(base: str, **fields: Any) -> ChatOpenAI:
    fields.setdefault("max_tokens", 12)
    return ChatOpenAI(model=MODEL, base_url=base, api_key="unused", max_retries=0, timeout=60, **fields)


@pytest.fixture
def event_loop_for_litellm() -> Iterator[None]:
    """A current event loop for LiteLLM's sync calls, closed after the test.

    LiteLLM times each sync call through `asyncio.get_event_loop()`, which creates a loop when the thread
    has none and never closes it: that loop would be a ResourceWarning (an error here) once collected.
    """
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield
    asyncio.set_event_loop(None)
    loop.close()


@pytest.fixture
def litellm_args(base: str, event_loop_for_litellm: None) -> dict[str, Any]:
    return {"model": f"openai/{MODEL}", "api_base": base, "api_key": "unused", "timeout": 60}


# LangChain


def assert_langchain_reply(reply: BaseMessage, max_tokens: int) -> None:
    assert isinstance(reply, AIMessage)
    assert isinstance(reply.content, str) and reply.content
    assert reply.response_metadata["finish_reason"] in FINISHED
    assert reply.usage_metadata is not None
    assert 0 < reply.usage_metadata["output_tokens"] <= max_tokens


def test_langchain_chat_two_turns_with_the_reply_in_the_history(base: str) -> None:
    llm = chat(base)
    history: list[BaseMessage] = [HumanMessage(GREETING)]
    first = llm.invoke(history)
    assert_langchain_reply(first, 12)
    history += [first, HumanMessage(FOLLOW_UP)]
    second = llm.invoke(history)
    assert_langchain_reply(second, 12)
    assert first.usage_metadata and second.usage_metadata
    assert second.usage_metadata["input_tokens"] > first.usage_metadata["input_tokens"]


def test_langchain_chat_streams_two_turns(base: str) -> None:
    llm = chat(base, max_tokens=8, stream_usage=True)
    history: list[BaseMessage] = [HumanMessage(GREETING)]
    for _ in range(2):
        parts = list(llm.stream(history))
        assert all(isinstance(part, AIMessageChunk) for part in parts)
        assert sum(1 for part in parts if part.content) >= 1
        # LangChain's own way to turn a stream into one message: add the chunks up.
        whole = functools.reduce(operator.add, parts)
        assert whole.content == "".join(str(part.content) for part in parts)
        assert_langchain_reply(whole, 8)
        history += [whole, HumanMessage(FOLLOW_UP)]


def test_langchain_structured_output_parses_both_turns(base: str) -> None:
    llm = chat(base, max_tokens=60, temperature=0, seed=1)
    structured = llm.with_structured_output(Person, method="json_schema", include_raw=True)
    history: list[BaseMessage] = [HumanMessage("Describe a person.")]
    for _ in range(2):
        result = structured.invoke(history)
        assert result["parsing_error"] is None
        assert isinstance(result["parsed"], Person)
        assert result["raw"].response_metadata["finish_reason"] == "stop"
        history += [result["raw"], HumanMessage("Describe another person.")]


def test_langchain_legacy_completions_continue_a_prompt(base: str) -> None:
    llm = OpenAI(model=MODEL, base_url=base, api_key="unused", max_tokens=12, max_retries=0, timeout=60)
    prompt = "Once upon a time"
    for _ in range(2):
        text = llm.invoke(prompt)
        assert isinstance(text, str) and text
        prompt += text + "\nThen"
    generation = llm.generate([prompt]).generations[0][0]
    assert generation.text and generation.generation_info
    assert generation.generation_info["finish_reason"] in FINISHED


# LiteLLM


def assert_litellm_reply(response: Any, max_tokens: int) -> None:
    choice = response.choices[0]
    assert choice.message.role == "assistant"
    assert isinstance(choice.message.content, str) and choice.message.content
    assert choice.finish_reason in FINISHED
    assert 0 < response.usage.completion_tokens <= max_tokens


@pytest.mark.parametrize(
    "keep",
    [lambda message: message.model_dump(), lambda message: message],
    ids=["model_dump", "message_object"],
)
def test_litellm_completion_two_turns(litellm_args: dict[str, Any], keep: Callable[[Any], Any]) -> None:
    messages: list[Any] = [{"role": "user", "content": GREETING}]
    first = litellm.completion(messages=messages, max_tokens=12, **litellm_args)
    assert_litellm_reply(first, 12)
    messages += [keep(first.choices[0].message), {"role": "user", "content": FOLLOW_UP}]
    second = litellm.completion(messages=messages, max_tokens=12, **litellm_args)
    assert_litellm_reply(second, 12)
    assert second.usage.prompt_tokens > first.usage.prompt_tokens


def test_litellm_streams_two_turns(litellm_args: dict[str, Any]) -> None:
    messages: list[Any] = [{"role": "user", "content": GREETING}]
    for _ in range(2):
        stream = litellm.completion(
            messages=messages, max_tokens=8, stream=True, stream_options={"include_usage": True}, **litellm_args
        )
        parts = list(stream)
        assert any(part.choices and part.choices[0].delta.content for part in parts)
        # LiteLLM's own way to turn a stream into one response.
        whole = litellm.stream_chunk_builder(parts, messages=messages)
        assert whole is not None
        assert_litellm_reply(whole, 8)
        messages += [whole.choices[0].message.model_dump(), {"role": "user", "content": FOLLOW_UP}]


def test_litellm_text_completion_continues_a_prompt(litellm_args: dict[str, Any]) -> None:
    prompt = "Once upon a time"
    for _ in range(2):
        response = litellm.text_completion(prompt=prompt, max_tokens=12, **litellm_args)
        choice = response.choices[0]
        assert isinstance(choice.text, str) and choice.text
        assert choice.finish_reason in FINISHED
        assert 0 < response.usage.completion_tokens <= 12
        prompt += choice.text + "\nThen"


# instructor


@pytest.mark.parametrize(
    "keep",
    [
        lambda person, message: {"role": "assistant", "content": person.model_dump_json()},
        lambda person, message: message.model_dump(),
    ],
    ids=["as_json", "raw_message"],
)
def test_instructor_json_schema_two_turns(client: openai.OpenAI, keep: Callable[[Person, Any], Any]) -> None:
    patched = instructor.from_openai(client, mode=instructor.Mode.JSON_SCHEMA)
    messages: list[Any] = [{"role": "user", "content": "Describe a person."}]
    for _ in range(2):
        person, completion = patched.chat.completions.create_with_completion(
            model=MODEL, response_model=Person, messages=messages, max_tokens=60, seed=1, temperature=0, max_retries=0
        )
        assert isinstance(person, Person)
        assert completion.choices[0].finish_reason == "stop"
        messages += [keep(person, completion.choices[0].message), {"role": "user", "content": "Another one."}]


# pydantic-ai


def agent(base: str, http: httpx2.AsyncClient, model: str = MODEL) -> Agent[None, str]:
    # Without `http_client` the provider shares a client it never closes: its sockets would be a ResourceWarning.
    provider = OpenAIProvider(base_url=base, api_key="unused", http_client=http)
    return Agent(OpenAIChatModel(model, provider=provider), model_settings={"max_tokens": 12})


def last_response(history: list[ModelMessage]) -> ModelResponse:
    reply = history[-1]
    assert isinstance(reply, ModelResponse)
    return reply


# Async, as pydantic-ai is: `run_sync` leaves behind the event loop it creates, another ResourceWarning.
async def test_pydantic_ai_agent_two_turns_with_message_history(base: str) -> None:
    async with httpx2.AsyncClient(timeout=60) as http:
        bot = agent(base, http)
        first = await bot.run(GREETING)
        assert isinstance(first.output, str) and first.output
        assert last_response(first.all_messages()).finish_reason in FINISHED
        second = await bot.run(FOLLOW_UP, message_history=first.all_messages())
    assert isinstance(second.output, str) and second.output
    history = second.all_messages()
    assert len(history) == 4 and history[:2] == first.all_messages()
    assert last_response(history).finish_reason in FINISHED
    assert second.usage.input_tokens > first.usage.input_tokens


# Errors


def langchain_call(base: str) -> None:
    ChatOpenAI(model="no-such-model", base_url=base, api_key="unused", max_tokens=4, max_retries=0).invoke("Hi")


def litellm_call(base: str) -> None:
    litellm.completion(
        model="openai/no-such-model", api_base=base, api_key="unused", messages=[{"role": "user", "content": "Hi"}]
    )


def instructor_call(base: str) -> None:
    with openai.OpenAI(base_url=base, api_key="unused", max_retries=0) as raw:
        client = instructor.from_openai(raw, mode=instructor.Mode.JSON_SCHEMA)
        client.chat.completions.create(
            model="no-such-model", response_model=Person, messages=[{"role": "user", "content": "Hi"}], max_retries=0
        )


def pydantic_ai_call(base: str) -> None:
    async def run() -> None:
        async with httpx2.AsyncClient(timeout=60) as http:
            await agent(base, http, model="no-such-model").run("Hi")

    asyncio.run(run())


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (langchain_call, openai.NotFoundError),
        (litellm_call, litellm.NotFoundError),
        (instructor_call, InstructorRetryException),
        (pydantic_ai_call, ModelHTTPError),
    ],
    ids=["langchain", "litellm", "instructor", "pydantic_ai"],
)
@pytest.mark.usefixtures("event_loop_for_litellm")
def test_an_unknown_model_is_a_clear_error_through_each_framework(
    base: str, monkeypatch: pytest.MonkeyPatch, call: Callable[[str], None], error: type[Exception]
) -> None:
    monkeypatch.setattr(litellm, "suppress_debug_info", True)  # LiteLLM prints a "Get Help" banner otherwise
    with pytest.raises(error, match="does not exist"):
        call(base)


@pytest.fixture
def one_second_jobs(fresh_redis_url: str, logs_dir: Path) -> Iterator[str]:
    """A stack whose jobs may generate for 1 s: a long stream fails in its middle, after tokens went out."""
    with running_stack(fresh_redis_url, logs_dir, job_timeout="1") as stack:
        yield f"{stack.base_url}/v1"


def test_an_error_in_the_middle_of_a_stream_stays_a_clear_error(
    one_second_jobs: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The status line (200) left with the first token, so the error comes as an event, as OpenAI sends it.

    Greedy, because this prompt then runs to `max_tokens` (40 s here): a sampled story can end before 1 s.
    """
    messages = [{"role": "user", "content": "Write a very long story."}]
    with openai.OpenAI(base_url=one_second_jobs, api_key="unused", max_retries=0, timeout=60) as client:
        stream = client.chat.completions.create(
            model=MODEL, messages=messages, max_tokens=2000, temperature=0, stream=True
        )
        received = []
        with pytest.raises(openai.APIError, match="exceeded its generation time limit of 1 s") as failed:
            for chunk in stream:
                received.append(chunk)
    assert received and isinstance(failed.value.body, dict) and failed.value.body["code"] == "job_timeout"

    monkeypatch.setattr(litellm, "suppress_debug_info", True)  # LiteLLM prints a "Get Help" banner otherwise
    loop = asyncio.new_event_loop()  # for LiteLLM's sync call, closed after it (see event_loop_for_litellm)
    asyncio.set_event_loop(loop)
    try:
        chunks = litellm.completion(
            model=f"openai/{MODEL}", api_base=one_second_jobs, api_key="unused", messages=messages,
            max_tokens=2000, temperature=0, stream=True,
        )  # fmt: skip
        # The SDK's in-stream error has no HTTP status (the 200 went out first): LiteLLM 1.110 calls it a
        # mid-stream failure, 503 (1.106 said 500). The server's message is what the user reads.
        with pytest.raises(
            litellm.exceptions.MidStreamFallbackError, match="exceeded its generation time limit of 1 s"
        ):
            for _ in chunks:
                pass
    finally:
        asyncio.set_event_loop(None)
        loop.close()
