"""Tool calls read out of streamed text, fed in pieces of every size: the deltas add up to the calls."""

import json

import pytest

from worker.toolcalls import ToolCallParser

FUNCTIONS = ["get_weather", "get_time"]


def read(text: str, step: int) -> tuple[ToolCallParser, str, dict[int, str], list[dict]]:
    parser = ToolCallParser(FUNCTIONS)
    outs = [parser.feed(text[i : i + step]) for i in range(0, len(text), step)] + [parser.finish()]
    deltas = [delta for out in outs for delta in out.calls]
    arguments: dict[int, str] = {}
    for delta in deltas:
        arguments[delta["index"]] = arguments.get(delta["index"], "") + delta["function"]["arguments"]
    return parser, "".join(out.content for out in outs), arguments, deltas


CALLS = [
    ('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris \\"FR\\" {x}"}}\n</tool_call>', None),
    ('Let me look. <tool_call>{"name": "get_weather", "arguments": {"city": "Rome"}}</tool_call>', "Let me look."),
    (
        '[TOOL_CALLS][{"name": "get_time", "arguments": {"zone": "UTC"}}, {"name": "get_weather", "arguments": {}}]',
        None,
    ),
    ('<|python_tag|>{"name": "get_weather", "parameters": {"city": "Oslo"}}', None),
    ('  {"name": "get_time", "parameters": {"zone": "CET"}}', None),
    ('[{"name": "get_time", "arguments": "{\\"zone\\": \\"EST\\"}"}]', None),
    ('<tool_call>\n{"arguments": {"city": "Lima"}, "name": "get_weather"}\n</tool_call>', None),
]


@pytest.mark.parametrize("step", [1, 2, 7, 1000])
@pytest.mark.parametrize(("text", "content"), CALLS)
def test_calls_of_each_family_are_read_whatever_the_pieces(text: str, content: str | None, step: int) -> None:
    parser, _, arguments, deltas = read(text, step)
    assert parser.calls and parser.message_content() == content
    assert arguments == {index: call.arguments for index, call in enumerate(parser.calls)}
    for call in parser.calls:
        assert call.name in FUNCTIONS and isinstance(json.loads(call.arguments), dict)
    openings = [delta for delta in deltas if "id" in delta]
    assert [o["id"] for o in openings] == [call.id for call in parser.calls]
    assert all(o["function"]["arguments"] == "" and o["type"] == "function" for o in openings)
    # Each call's opening comes before its arguments.
    assert all(deltas.index(o) < min(i for i, d in enumerate(deltas) if d["index"] == o["index"] and "id" not in d)
               for o in openings if arguments[o["index"]])  # fmt: skip


@pytest.mark.parametrize("step", [1, 3, 1000])
@pytest.mark.parametrize(
    "text",
    [
        "The weather is fine.",
        '{"answer": 42}',
        '{"name": "unknown_function", "arguments": {}}',
        "[1, 2, 3]",
        "Hello <b>there</b> <tool",
        "",
    ],
)
def test_text_that_is_no_call_of_these_tools_stays_content(text: str, step: int) -> None:
    parser, content, arguments, _ = read(text, step)
    assert not parser.calls and not arguments
    assert content == text and parser.message_content() == text


def test_content_streams_before_a_call_and_a_cut_call_keeps_what_it_had() -> None:
    parser = ToolCallParser(FUNCTIONS)
    assert parser.feed("Sure, ").content == "Sure, "
    out = parser.feed('<tool_call>{"name": "get_weather", "arguments": {"city": "Par')
    assert out.content == "" and out.calls[0]["function"]["name"] == "get_weather"
    assert out.calls[-1]["function"]["arguments"] == '{"city": "Par'
    parser.finish()
    assert parser.calls[0].arguments == '{"city": "Par'
