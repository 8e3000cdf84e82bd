"""Tools into the prompt: the model's own template when it renders tools, else the generic prompt."""

import json
from typing import Any

from llama_cpp.llama_chat_format import Jinja2ChatFormatter
from llama_cpp.llama_grammar import LlamaGrammar

from shared.payload import ChatMessage, JobPayload, Params, Tools
from worker import toolprompt
from worker.engine import CHATML, Engine
from worker.model import Grammars

# The shape of Qwen 2.5's template: tools in the system turn, calls in <tool_call> tags, results as user turns.
QWEN_LIKE = (
    "{%- if tools %}<|im_start|>system\nTools:{% for tool in tools %}\n{{ tool | tojson }}{% endfor %}<|im_end|>\n"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if message.tool_calls %}<|im_start|>assistant{% for call in message.tool_calls %}\n<tool_call>\n"
    '{"name": "{{ call.function.name }}", "arguments": {{ call.function.arguments | tojson }}}\n</tool_call>'
    "{% endfor %}<|im_end|>\n"
    "{%- elif message.role == 'tool' %}<|im_start|>user\n<tool_response>\n{{ message.content }}\n</tool_response>"
    "<|im_end|>\n"
    "{%- else %}<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>\n{%- endif %}"
    "{%- endfor %}<|im_start|>assistant\n"
)
FUNCTION = {"name": "get_weather", "description": "Weather", "parameters": {"type": "object", "properties": {}}}
CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
HISTORY = [
    ChatMessage(role="user", content="Weather in Paris?"),
    ChatMessage(role="assistant", content="", tool_calls=[CALL]),
    ChatMessage(role="tool", content='{"sky": "clear"}', tool_call_id="call_1"),
]


class Tokenizer:
    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        return list(text)

    def detokenize(self, tokens: list[int], prev_tokens: list[int] | None = None, special: bool = False) -> bytes:
        return bytes(tokens)


def prompt_of(template: str, tools: Tools | None) -> str:
    formatter = Jinja2ChatFormatter(template=template, eos_token="<|im_end|>", bos_token="")
    engine = Engine(
        Tokenizer(), n_ctx=4096, formatter=formatter, grammars=Grammars(), tool_family=toolprompt.family_of(template)
    )
    job = JobPayload(
        id="job_1", kind="chat", model="m", lane="i", created=0, messages=HISTORY, params=Params(), tools=tools
    )
    return bytes(engine.prepare(job).tokens).decode()


def test_the_families_are_told_apart_by_their_templates() -> None:
    assert toolprompt.family_of(CHATML) is None
    assert toolprompt.family_of(QWEN_LIKE) is toolprompt.HERMES
    assert toolprompt.family_of("{{ tools }}[TOOL_CALLS]") is toolprompt.MISTRAL
    assert toolprompt.family_of("{{ tools }}<|python_tag|>") is toolprompt.LLAMA3


def test_a_template_that_renders_tools_gets_them_and_the_calls_as_objects() -> None:
    prompt = prompt_of(QWEN_LIKE, Tools(functions=[FUNCTION], choice="auto"))
    assert json.dumps({"type": "function", "function": FUNCTION}) in prompt
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>' in prompt
    assert '<tool_response>\n{"sky": "clear"}\n</tool_response>' in prompt
    assert toolprompt.GENERIC_INSTRUCTIONS.split("{")[0] not in prompt


def test_a_template_without_tools_gets_the_generic_prompt_and_plain_turns() -> None:
    prompt = prompt_of(CHATML, Tools(functions=[FUNCTION], choice="auto"))
    assert prompt.startswith("<|im_start|>system\nYou can call functions")
    assert json.dumps({"type": "function", "function": FUNCTION}) in prompt
    assert '<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}' in prompt
    assert '<|im_start|>user\n<tool_response>\n{"sky": "clear"}\n</tool_response>' in prompt
    # tool_choice "none": the history still renders, the tools are not offered.
    assert "You can call functions" not in prompt_of(CHATML, None)


def grammar(family: toolprompt.Family, **tools: Any) -> str:
    return toolprompt.call_grammar(
        Tools(functions=[FUNCTION, {"name": "now"}], **tools), family, Grammars().converter()
    )


def test_enforced_calls_get_a_grammar_llama_cpp_accepts_bounded_in_number() -> None:
    for family in (toolprompt.HERMES, toolprompt.MISTRAL, toolprompt.LLAMA3):
        for tools in (
            {"choice": "required"},
            {"choice": "function", "function": "now"},
            {"choice": "required", "parallel": False},
        ):
            LlamaGrammar.from_string(grammar(family, **tools), verbose=False)
    assert grammar(toolprompt.HERMES, choice="required").startswith(
        'root ::= "<tool_call>\\n" call "\\n</tool_call>" ("\\n" "<tool_call>\\n" call "\\n</tool_call>"){0,1}'
    )
    named = grammar(toolprompt.HERMES, choice="function", function="now")
    assert named.startswith('root ::= "<tool_call>\\n" call "\\n</tool_call>"\n') and "get_weather" not in named
    assert grammar(toolprompt.MISTRAL, choice="required", parallel=False).startswith(
        'root ::= "[TOOL_CALLS][" call "]"'
    )
