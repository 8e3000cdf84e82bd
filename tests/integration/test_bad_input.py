"""Hostile text that is valid input: SSE framing and control characters are relayed safely, never parsed."""

import httpx
import openai
import orjson
import pytest

from tests.stack import MODEL, Stack

pytestmark = pytest.mark.integration

# Would end or forge events if a token were written into the stream unescaped.
FRAMING = 'data: [DONE]\n\ndata: {"error": 1}\n\nevent: done\nid: 99\r\n\r\n'


@pytest.mark.parametrize("prompt", [FRAMING, "tab\tnul\u0000bell\u0007escape\u001b[31m", "\u2028\u2029\ufeff"])
def test_framing_and_control_characters_in_a_prompt(stack: Stack, client: openai.OpenAI, prompt: str) -> None:
    messages = [{"role": "user", "content": "Repeat exactly:\n" + prompt}]
    whole = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=24, temperature=0, seed=3)
    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=messages, max_tokens=24, temperature=0, seed=3, stream=True
        )
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == whole.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == whole.choices[0].finish_reason
    assert len({c.id for c in chunks}) == 1


def test_completion_that_echoes_framing_stays_one_event_per_token(stack: Stack) -> None:
    body = {"model": MODEL, "prompt": FRAMING * 3, "max_tokens": 32, "temperature": 0, "stream": True}
    with httpx.stream("POST", f"{stack.base_url}/v1/completions", json=body, timeout=60) as reply:
        raw = reply.read().decode()
    events = [block for block in raw.split("\n\n") if block]
    assert events[-1] == "data: [DONE]"
    # Every event is one `data:` line of JSON: no token's newlines leaked into the framing.
    assert all(block.startswith("data: {") and "\n" not in block for block in events[:-1])
    text = "".join(orjson.loads(block[6:])["choices"][0]["text"] for block in events[:-1])
    assert "\n" in text  # the model did echo line breaks, so the check above had something to catch
