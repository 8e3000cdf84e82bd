"""How a chat job's tools reach the model: through its own chat template when the template renders `tools`,
otherwise through llamaq's generic tool prompt; and the grammar that enforces a required or named call.

The generic prompt (documented in the README) lists the functions in a system message and asks for each
call as `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`, the Hermes format many small models were
trained on. A call of the history is written back in that format, a tool's result as a user message in
`<tool_response>` tags, so any template (even one that knows only user and assistant turns) renders it.
"""

import json
from dataclasses import dataclass
from typing import Any

from shared.payload import ChatMessage, Tools

GENERIC_INSTRUCTIONS = (
    "You can call functions to answer. The functions, as JSON schemas:\n{functions}\n\n"
    "To call a function, answer with one block per call and nothing else:\n"
    '<tool_call>\n{{"name": "<function name>", "arguments": {{<the arguments as JSON>}}}}\n</tool_call>\n'
    "A function's result comes back in <tool_response> tags."
)


@dataclass(frozen=True)
class Family:
    """How a model family writes its calls: around each call, between calls, and the arguments' key."""

    name: str
    opening: str  # before the calls
    before_call: str
    after_call: str
    between: str
    closing: str
    arguments_key: str = "arguments"
    trigger: str = ""  # a regex that finds where the calls begin, when the model may also answer in text


HERMES = Family("hermes", "", "<tool_call>\n", "\n</tool_call>", "\n", "", trigger=r"(<tool_call>)")
LLAMA3 = Family("llama3", "", "", "", "\n", "", arguments_key="parameters", trigger=r"^\s*(\{)")
MISTRAL = Family("mistral", "[TOOL_CALLS][", "", "", ", ", "]", trigger=r"(\[TOOL_CALLS\])")


def family_of(template: str) -> Family | None:
    """The tool format a chat template writes, or None when it does not render tools (the generic prompt)."""
    if "tools" not in template:
        return None
    if "[TOOL_CALLS]" in template:
        return MISTRAL
    if "<|python_tag|>" in template or "<|eom_id|>" in template or '"parameters"' in template:
        return LLAMA3
    return HERMES


def template_messages(messages: list[ChatMessage], native: bool) -> list[dict[str, Any]]:
    """The history as the template gets it: with calls and tool messages (native), or as plain turns."""
    rendered = []
    for message in messages:
        if native:
            rendered.append(_native(message))
        elif message.role == "tool":
            rendered.append({"role": "user", "content": f"<tool_response>\n{message.content}\n</tool_response>"})
        elif message.tool_calls:
            calls = "\n".join(_hermes_call(call) for call in message.tool_calls)
            rendered.append({"role": "assistant", "content": "\n".join(filter(None, [message.content, calls]))})
        else:
            rendered.append({"role": message.role, "content": message.content})
    return rendered


def with_instructions(messages: list[dict[str, Any]], tools: Tools) -> list[dict[str, Any]]:
    """The generic prompt: the functions described in the system message (one is added when none leads)."""
    functions = "\n".join(json.dumps({"type": "function", "function": f}) for f in _offered(tools))
    text = GENERIC_INSTRUCTIONS.format(functions=functions)
    if messages and messages[0]["role"] == "system":
        return [{"role": "system", "content": f"{messages[0]['content']}\n\n{text}"}, *messages[1:]]
    return [{"role": "system", "content": text}, *messages]


def template_tools(tools: Tools) -> list[dict[str, Any]]:
    return [{"type": "function", "function": f} for f in _offered(tools)]


def _offered(tools: Tools) -> list[dict[str, Any]]:
    if tools.choice == "function":
        return [f for f in tools.functions if f["name"] == tools.function]
    return tools.functions


def _native(message: ChatMessage) -> dict[str, Any]:
    item: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        # Templates write the arguments with `tojson`: they expect an object, not the JSON text.
        item["tool_calls"] = [
            {**call, "function": {**call["function"], "arguments": _arguments(call)}} for call in message.tool_calls
        ]
    if message.tool_call_id is not None:
        item["tool_call_id"] = message.tool_call_id
    return item


def _arguments(call: dict[str, Any]) -> Any:
    try:
        return json.loads(call["function"]["arguments"])
    except ValueError:
        return call["function"]["arguments"]


def _hermes_call(call: dict[str, Any]) -> str:
    body = {"name": call["function"]["name"], "arguments": _arguments(call)}
    return f"{HERMES.before_call}{json.dumps(body)}{HERMES.after_call}"


def call_grammar(tools: Tools, family: Family, converter: Any) -> str:
    """GBNF for what the model must write when a call is required or named: calls in the family's format,
    each a function of the tools with arguments that follow its schema (`converter` is llama.cpp's
    JSON-schema converter, ordering `name` first)."""
    schema = {"anyOf": [_call_schema(f, family.arguments_key) for f in _offered(tools)]}
    converter.visit(converter.resolve_refs(schema, "tools"), "call")
    call = _join(_literal(family.before_call), "call", _literal(family.after_call))
    more = max_calls(tools) - 1
    repeat = f"({_join(_literal(family.between), call)}){{0,{more}}}" if more else ""
    root = _join(_literal(family.opening), call, repeat, _literal(family.closing))
    return f"root ::= {root}\n{converter.format_grammar()}"


def max_calls(tools: Tools) -> int:
    """Calls an answer may make: one of a named function (or without parallel calls), else up to one a tool.
    Unbounded, a small model repeats its call until its token budget ends."""
    return len(_offered(tools)) if tools.parallel and tools.choice != "function" else 1


def _call_schema(function: dict[str, Any], arguments_key: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "name": {"const": function["name"]},
            arguments_key: function.get("parameters") or {"type": "object"},
        },
        "required": ["name", arguments_key],
        "additionalProperties": False,
    }


def _literal(text: str) -> str:
    """A GBNF string literal (JSON's escapes are GBNF's), or nothing for no text."""
    return json.dumps(text) if text else ""


def _join(*parts: str) -> str:
    return " ".join(part for part in parts if part)
