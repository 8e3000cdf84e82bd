"""Function tools as OpenAI's chat API defines them: the tools a request offers, which it lets the model call
(`tool_choice`), and the calls an assistant message of the history carries."""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# OpenAI's limits: a function name of letters, digits, `_` and `-`; at most 128 tools a request.
NAME_PATTERN = r"^[a-zA-Z0-9_-]{1,64}$"
MAX_TOOLS = 128


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class FunctionDefinition(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    description: str | None = None
    parameters: dict[str, Any] | None = None  # a JSON schema; none means an object of any shape
    strict: bool | None = None  # always honoured when the call is enforced: arguments follow the schema


class FunctionTool(_Strict):
    type: Literal["function"]
    function: FunctionDefinition


class FunctionName(_Strict):
    name: str = Field(pattern=NAME_PATTERN)


class NamedToolChoice(_Strict):
    type: Literal["function"]
    function: FunctionName


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


class _Lenient(BaseModel):
    # Calls come back from clients as they received them, sometimes annotated: unknown keys are ignored.
    model_config = ConfigDict(extra="ignore", strict=True)


class CalledFunction(_Lenient):
    name: str = Field(min_length=1, max_length=64)
    arguments: str  # JSON text, as the model wrote it


class ToolCall(_Lenient):
    id: str = Field(min_length=1, max_length=256)
    type: Literal["function"] = "function"
    function: CalledFunction


ToolCalls = Annotated[list[ToolCall], Field(min_length=1)]


def chosen(tools: list[FunctionTool] | None, choice: ToolChoice | None) -> tuple[str | None, str | None]:
    """What the request lets the model do: (None, None) no call, ("auto"|"required", None), or ("function", name)."""
    if not tools or choice == "none":
        return None, None
    if choice is None:
        return "auto", None
    if isinstance(choice, NamedToolChoice):
        return "function", choice.function.name
    return choice, None
