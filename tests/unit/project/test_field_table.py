"""Every request field the OpenAI spec defines is implemented, accepted at its default only, or refused; the
README's table says which, and this test keeps the table, the code and the spec in step."""

import re
from typing import Any

import orjson

from shared import defaults
from shared.schemas import ChatCompletionRequest, CompletionRequest, Message
from tests.stack import ROOT

SPEC = orjson.loads((ROOT / "tests" / "openai-openapi.json").read_bytes())["components"]["schemas"]

# How far each implemented field goes, where not all the way; per endpoint where they differ.
NOTES = {
    "n": "up to 16 and `LLAMAQ_SLOTS`; one prompt pass, its cache copied to each choice",
    "logprobs": "the chosen token's logprob and `top_logprobs` alternatives, from the raw logits",
    "stream_options": "`include_usage`; `include_obfuscation` false or null",
    "response_format": "`text`, `json_object`, `json_schema` (a grammar enforces it)",
    "prompt": "one text prompt (or a list of one); token ids refused",
    "stop": "up to 4, each up to 256 characters",
    "seed": "int64; a seeded request is reproducible (the prefix cache reuses only prompt-evaluated tokens)",
    "user": "accepted; changes nothing in the answer",
    "safety_identifier": "accepted; changes nothing in the answer",
    "prompt_cache_key": "accepted; changes nothing in the answer",
    "max_completion_tokens": "takes precedence over `max_tokens`",
    "content": "string, text and refusal parts, or null / absent",
    "tools": "function tools, up to 128; a custom tool refused",
    "tool_choice": "`none`, `auto`, `required`, a named function (a grammar enforces the last two)",
    "parallel_tool_calls": "false: one call an answer; true (the default): up to one a tool",
    "tool_calls": "a function call's `arguments` as JSON text",
    "refusal": "its text stands in for a null content",
}
CHAT_NOTES = NOTES | {"max_tokens": "`LLAMAQ_DEFAULT_MAX_TOKENS` when absent"}
COMPLETION_NOTES = NOTES | {"max_tokens": "16 when absent or null, as OpenAI"}
START, END = "<!-- fields:start -->", "<!-- fields:end -->"


def properties(name: str) -> dict[str, Any]:
    schema = SPEC[name]
    found: dict[str, Any] = {}
    for part in schema.get("allOf", []):
        found |= properties(part["$ref"].rsplit("/", 1)[-1]) if "$ref" in part else part.get("properties", {})
    return found | schema.get("properties", {})


def cell(
    field: str, implemented: set[str], default_only: dict[str, defaults.DefaultOnly], notes: dict[str, str]
) -> str:
    if field in implemented:
        return "implemented" + (f": {notes[field]}" if field in notes else "")
    if field in default_only:
        return f"default only: {default_only[field].says}"
    return "refused"


def table() -> str:
    chat, legacy = properties("CreateChatCompletionRequest"), properties("CreateCompletionRequest")
    rows = ["| request field | `/v1/chat/completions` | `/v1/completions` |", "|---|---|---|"]
    for field in sorted(chat.keys() | legacy.keys()):
        in_chat, in_legacy = "—", "—"
        if field in chat:
            in_chat = cell(field, set(ChatCompletionRequest.model_fields), defaults.CHAT, CHAT_NOTES)
        if field in legacy:
            in_legacy = cell(field, set(CompletionRequest.model_fields), defaults.COMPLETION, COMPLETION_NOTES)
        rows.append(f"| `{field}` | {in_chat} | {in_legacy} |")
    rows += ["", "| assistant message field (history) | |", "|---|---|"]
    for field in sorted(properties("ChatCompletionRequestAssistantMessage")):
        treated = cell(field, set(Message.model_fields), defaults.ASSISTANT_MESSAGE, NOTES)
        rows.append(f"| `{field}` | {treated} |")
    return "\n".join(rows)


def readme_table() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(re.escape(START) + r"\n(.*?)\n" + re.escape(END), text, re.S)
    assert match, "README.md has no field table"
    return match.group(1)


def test_the_readme_table_lists_every_spec_field_as_the_code_treats_it() -> None:
    assert readme_table() == table(), "regenerate the table: python -m tests.unit.project.test_field_table"


def test_no_spec_field_is_refused_outright_or_left_out() -> None:
    for field in properties("CreateChatCompletionRequest"):
        assert field in ChatCompletionRequest.model_fields or field in defaults.CHAT, field
    for field in properties("CreateCompletionRequest"):
        assert field in CompletionRequest.model_fields or field in defaults.COMPLETION, field
    for field in properties("ChatCompletionRequestAssistantMessage"):
        assert field in Message.model_fields or field in defaults.ASSISTANT_MESSAGE, field


def test_the_default_only_tables_name_only_spec_fields() -> None:
    assert defaults.CHAT.keys() <= properties("CreateChatCompletionRequest").keys()
    assert defaults.COMPLETION.keys() <= properties("CreateCompletionRequest").keys()
    assert defaults.ASSISTANT_MESSAGE.keys() <= properties("ChatCompletionRequestAssistantMessage").keys()


if __name__ == "__main__":
    print(table())
