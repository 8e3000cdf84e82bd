"""The Responses API request (`POST /v1/responses`) as this server accepts it: text and message input, function
calls and their outputs as input items, function tools, `text.format`, background and stored responses.

Spec fields not implemented are accepted only at their default value, as for chat (shared/defaults.py).
Input items, like chat history, ignore keys the server does not use (clients send back the `id` and `status`
of the items they received).
"""

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from shared import defaults
from shared.schemas import JsonObjectFormat, Strict, Text
from shared.schemas import TextFormat as PlainText
from shared.tools import MAX_TOOLS, NAME_PATTERN

# A response's input, as OpenAI bounds a request's.
MAX_INPUT_ITEMS = 2048


class _Item(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class InputText(_Item):
    type: Literal["input_text", "output_text"]
    text: Text


class MessageItem(_Item):
    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: Text | list[InputText]

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(part.text for part in self.content)


class FunctionCallItem(_Item):
    type: Literal["function_call"]
    call_id: str = Field(min_length=1, max_length=256)
    name: str = Field(pattern=NAME_PATTERN)
    arguments: str


class FunctionCallOutputItem(_Item):
    type: Literal["function_call_output"]
    call_id: str = Field(min_length=1, max_length=256)
    output: Text | list[InputText]

    def text(self) -> str:
        return self.output if isinstance(self.output, str) else "".join(part.text for part in self.output)


def _kind(item: Any) -> str:
    return item.get("type", "message") if isinstance(item, dict) else "message"


InputItem = Annotated[
    Annotated[MessageItem, Tag("message")]
    | Annotated[FunctionCallItem, Tag("function_call")]
    | Annotated[FunctionCallOutputItem, Tag("function_call_output")],
    Discriminator(_kind),
]


class FunctionTool(Strict):
    """A function tool in the Responses shape (flat: no nested `function` object)."""

    type: Literal["function"]
    name: str = Field(pattern=NAME_PATTERN)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class FunctionChoice(Strict):
    type: Literal["function"]
    name: str = Field(pattern=NAME_PATTERN)


class JsonSchemaText(Strict):
    """`text.format` for JSON following a schema: flat, where chat nests it under `json_schema`."""

    type: Literal["json_schema"]
    name: str = Field(min_length=1, max_length=64)
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    description: str | None = None
    strict: bool | None = None


TextFormat = Annotated[PlainText | JsonObjectFormat | JsonSchemaText, Field(discriminator="type")]


class TextOptions(Strict):
    format: TextFormat | None = None
    verbosity: Literal["medium"] | None = None

    def chat_format(self) -> dict[str, Any] | None:
        """The same format as chat's `response_format`."""
        if self.format is None:
            return None
        if isinstance(self.format, JsonSchemaText):
            schema = self.format.model_dump(by_alias=True, exclude={"type"}, exclude_none=True)
            return {"type": "json_schema", "json_schema": schema}
        return self.format.model_dump()


class StreamOptions(Strict):
    include_obfuscation: Literal[False] | None = None


RESPONSE_DEFAULTS: dict[str, defaults.DefaultOnly] = {
    "include": defaults.EMPTY_LIST,
    "reasoning": defaults.NULL,
    "conversation": defaults.NULL,
    "prompt": defaults.NULL,
    "max_tool_calls": defaults.NULL,
    "top_logprobs": defaults.DefaultOnly((None, 0), "0 or null"),
    "truncation": defaults.DefaultOnly((None, "disabled"), '"disabled" or null'),
    "service_tier": defaults.DefaultOnly((None, "auto", "default"), '"auto", "default" or null'),
    "prompt_cache_retention": defaults.DefaultOnly((None, "in_memory"), '"in_memory" or null'),
}


class ResponseCreate(Strict):
    DEFAULT_ONLY: ClassVar[dict[str, defaults.DefaultOnly]] = RESPONSE_DEFAULTS

    model: Text = Field(min_length=1, max_length=256)
    input: Text | Annotated[list[InputItem], Field(min_length=1, max_length=MAX_INPUT_ITEMS)]
    instructions: Text | None = None
    max_output_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    text: TextOptions | None = None
    tools: list[FunctionTool] | None = Field(None, max_length=MAX_TOOLS)
    tool_choice: Literal["none", "auto", "required"] | FunctionChoice | None = None
    parallel_tool_calls: bool | None = None
    metadata: dict[str, Annotated[str, Field(max_length=512)]] | None = Field(None, max_length=16)
    store: bool | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    background: bool | None = None
    previous_response_id: str | None = Field(None, min_length=1, max_length=128)
    user: Text | None = Field(None, max_length=256)
    safety_identifier: Text | None = Field(None, max_length=256)
    prompt_cache_key: Text | None = Field(None, max_length=256)

    @model_validator(mode="before")
    @classmethod
    def _drop_defaults(cls, data: Any) -> Any:
        return defaults.drop_defaults(data, cls.DEFAULT_ONLY)

    @model_validator(mode="after")
    def _background_is_stored(self) -> "ResponseCreate":
        if self.background and self.store is False:
            raise ValueError("background responses must be stored: 'store' cannot be false with 'background'")
        return self

    def items(self) -> list[MessageItem | FunctionCallItem | FunctionCallOutputItem]:
        """The input as items: a text input is one user message."""
        if isinstance(self.input, str):
            return [MessageItem(role="user", content=self.input)]
        return list(self.input)
