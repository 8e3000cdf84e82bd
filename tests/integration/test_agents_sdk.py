"""The OpenAI Agents SDK (openai-agents 0.24) running a one-tool agent against llamaq's Responses API.

The first turn requires a call (a 135M model seldom chooses one); the SDK then resets `tool_choice` to
`auto`, as it does by default, so the second turn answers in text after reading the tool's output."""

import json
from collections.abc import AsyncIterator

import pytest
from agents import (
    Agent,
    ModelSettings,
    OpenAIResponsesModel,
    Runner,
    function_tool,
    set_tracing_disabled,
)
from agents.items import MessageOutputItem, ToolCallItem, ToolCallOutputItem
from openai import AsyncOpenAI

from tests.stack import MODEL, Stack

pytestmark = pytest.mark.integration


@pytest.fixture
async def responses_client(stack: Stack) -> AsyncIterator[AsyncOpenAI]:
    set_tracing_disabled(True)  # the SDK otherwise exports its traces to OpenAI
    client = AsyncOpenAI(base_url=f"{stack.base_url}/v1", api_key="unused", max_retries=0, timeout=60)
    yield client
    await client.close()


def weather_agent(client: AsyncOpenAI, asked: list[str]) -> Agent:
    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city now."""
        asked.append(city)
        return json.dumps({"city": city, "sky": "clear", "celsius": 18})

    settings = ModelSettings(tool_choice="required", max_tokens=60, temperature=0)
    model = OpenAIResponsesModel(model=MODEL, openai_client=client)
    return Agent(name="weather", instructions="Answer with the weather.", tools=[get_weather], model=model,
                 model_settings=settings)  # fmt: skip


async def test_an_agent_calls_its_tool_and_answers(responses_client: AsyncOpenAI) -> None:
    asked: list[str] = []
    result = await Runner.run(weather_agent(responses_client, asked), "What is the weather in Paris?", max_turns=4)
    kinds = [type(item) for item in result.new_items]
    assert kinds == [ToolCallItem, ToolCallOutputItem, MessageOutputItem]
    assert len(asked) == 1 and isinstance(asked[0], str)
    assert isinstance(result.final_output, str) and result.final_output
    assert len(result.raw_responses) == 2


async def test_an_agent_streams_the_same_loop(responses_client: AsyncOpenAI) -> None:
    asked: list[str] = []
    run = Runner.run_streamed(weather_agent(responses_client, asked), "What is the weather in Rome?", max_turns=4)
    kinds = [event.type async for event in run.stream_events()]
    assert "raw_response_event" in kinds and "run_item_stream_event" in kinds
    assert len(asked) == 1 and isinstance(run.final_output, str) and run.final_output
