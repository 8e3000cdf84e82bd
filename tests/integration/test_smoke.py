import openai
import pytest

from tests.stack import MODEL

pytestmark = pytest.mark.integration


def test_chat_non_stream_and_stream(client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "Say hi"}]
    reply = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=8, seed=1)
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage is not None and reply.usage.completion_tokens <= 8
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=messages,
            max_tokens=8,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].usage is not None
    assert chunks[-2].choices[0].finish_reason in ("stop", "length")
