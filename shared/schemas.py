"""OpenAI request bodies the server accepts: spec fields implemented or at their default (shared/defaults.py);
anything else is refused, never dropped. Only unknown keys inside history messages are ignored."""

from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from shared import defaults
from shared.tools import MAX_TOOLS, FunctionTool, NamedToolChoice, ToolCalls, ToolChoice

MAX_STOP_CHARS = 256
# Choices one request may ask for (`n`); a worker also needs as many free slots.
MAX_CHOICES = 16


def _encodable(value: str) -> str:
    """Refuse lone surrogates (`\\ud800`): valid JSON escapes, but not text any model can read."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("the string contains invalid Unicode (a lone surrogate)") from None
    return value


Text = Annotated[str, AfterValidator(_encodable)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class TextPart(Strict):
    type: Literal["text"]
    text: Text


class RefusalPart(Strict):
    type: Literal["refusal"]
    refusal: Text


class Message(BaseModel):
    """One message of the history. Keys the spec does not define are ignored here (clients annotate the
    messages they send back, e.g. LiteLLM's `provider_specific_fields`), as vLLM does; the spec's own keys
    this server does not implement are accepted only with the value a message without them carries."""

    model_config = ConfigDict(extra="ignore", strict=True)

    role: Literal["system", "developer", "user", "assistant", "tool"]
    # Required but for assistant messages, whose content may be null or absent (`refusal` or calls then speak).
    content: Annotated[Text | list[TextPart | RefusalPart] | None, Field(union_mode="left_to_right")]
    name: Text | None = Field(None, max_length=256)
    refusal: Text | None = None
    tool_calls: ToolCalls | None = None  # an assistant's calls
    tool_call_id: Text | None = Field(None, min_length=1, max_length=256)  # the call a tool message answers

    @model_validator(mode="before")
    @classmethod
    def _assistant_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("role") == "assistant":
            if data.get("tool_calls") == []:  # what a message without calls may carry
                data = {key: value for key, value in data.items() if key != "tool_calls"}
            return {"content": None, **defaults.drop_defaults(data, defaults.ASSISTANT_MESSAGE)}
        return data

    @field_validator("role", mode="before")
    @classmethod
    def _legacy_function_role(cls, value: Any) -> Any:
        if value == "function":
            raise PydanticCustomError(
                defaults.UNSUPPORTED,
                "'function' messages (the deprecated function calling) are not supported by this server; "
                "send the result as a 'tool' message with its 'tool_call_id'",
                {"role": value},
            )
        return value

    @field_validator("content")
    @classmethod
    def _content_for_role(cls, value: Any, info: ValidationInfo) -> Any:
        role = info.data.get("role")
        if role != "assistant" and value is None:
            raise ValueError(f"a {role} message needs content")
        if role != "assistant" and isinstance(value, list) and any(isinstance(p, RefusalPart) for p in value):
            raise ValueError("only assistant messages may carry refusal parts")
        return value

    @model_validator(mode="after")
    def _calls_for_role(self) -> "Message":
        if self.tool_calls is not None and self.role != "assistant":
            raise PydanticCustomError("invalid_message", "only assistant messages may carry tool_calls")
        if self.role == "tool" and self.tool_call_id is None:
            raise PydanticCustomError("invalid_message", "a tool message needs the 'tool_call_id' it answers")
        if self.role != "tool" and self.tool_call_id is not None:
            raise PydanticCustomError("invalid_message", "only tool messages may carry a tool_call_id")
        return self

    def text(self) -> str:
        if self.content is None:
            return self.refusal or ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text if isinstance(part, TextPart) else part.refusal for part in self.content)


class StreamOptions(Strict):
    include_usage: bool | None = False
    # Padding against network side channels, which this server does not add: only "off" is accepted.
    include_obfuscation: Literal[False] | None = None


class JsonSchemaFormat(Strict):
    name: str = Field(min_length=1, max_length=64)
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    description: str | None = None
    strict: bool | None = None


class TextFormat(Strict):
    type: Literal["text"]


class JsonObjectFormat(Strict):
    type: Literal["json_object"]


class JsonSchemaResponseFormat(Strict):
    type: Literal["json_schema"]
    json_schema: JsonSchemaFormat


ResponseFormat = Annotated[TextFormat | JsonObjectFormat | JsonSchemaResponseFormat, Field(discriminator="type")]


class SamplingFields(Strict):
    # The spec's fields this server does not implement, each accepted only with its default value.
    DEFAULT_ONLY: ClassVar[dict[str, defaults.DefaultOnly]] = {}

    model: Text = Field(min_length=1, max_length=256)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    stop: Text | list[Text] | None = None
    seed: int | None = Field(None, ge=-(2**63), le=2**63 - 1)  # int64, as the spec and vLLM
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    # Identifiers of the end user and of a prompt-cache group: accepted; they change nothing in the answer.
    user: Text | None = Field(None, max_length=256)
    safety_identifier: Text | None = Field(None, max_length=256)
    prompt_cache_key: Text | None = Field(None, max_length=256)
    n: int | None = Field(None, ge=1, le=MAX_CHOICES)

    @model_validator(mode="before")
    @classmethod
    def _drop_defaults(cls, data: Any) -> Any:
        return defaults.drop_defaults(data, cls.DEFAULT_ONLY)

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences")
        if value == "" or (isinstance(value, list) and "" in value):
            raise ValueError("stop sequences must not be empty")
        # The worker matches stops against held-back text on every token: long ones would stall it.
        if any(len(stop) > MAX_STOP_CHARS for stop in ([value] if isinstance(value, str) else value or [])):
            raise ValueError(f"each stop sequence may be at most {MAX_STOP_CHARS} characters")
        return value

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


class ChatCompletionRequest(SamplingFields):
    DEFAULT_ONLY = defaults.CHAT

    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    response_format: ResponseFormat | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    tools: list[FunctionTool] | None = Field(None, max_length=MAX_TOOLS)
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None

    @model_validator(mode="after")
    def _top_logprobs_need_logprobs(self) -> "ChatCompletionRequest":
        if self.top_logprobs and not self.logprobs:
            raise PydanticCustomError("logprobs_required", "top_logprobs requires logprobs to be true")
        return self

    @field_validator("tools")
    @classmethod
    def _distinct_names(cls, value: list[FunctionTool] | None) -> list[FunctionTool] | None:
        names = [tool.function.name for tool in value or []]
        if len(set(names)) != len(names):
            raise ValueError("each tool needs a name of its own")
        return value

    @field_validator("tool_choice")
    @classmethod
    def _choice_among_tools(cls, choice: ToolChoice | None, info: ValidationInfo) -> ToolChoice | None:
        names = [tool.function.name for tool in info.data.get("tools") or []]
        if choice == "required" and not names:
            raise ValueError("'required' needs tools")
        if isinstance(choice, NamedToolChoice) and choice.function.name not in names:
            raise ValueError(f"the function '{choice.function.name}' is not among the tools")
        return choice

    def token_limit(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens

    def logprob_request(self) -> tuple[bool, int]:
        return bool(self.logprobs), self.top_logprobs or 0


# OpenAI's default `max_tokens` for legacy completions.
LEGACY_MAX_TOKENS = 16


class CompletionRequest(SamplingFields):
    DEFAULT_ONLY = defaults.COMPLETION

    prompt: Text | list[Text]
    max_tokens: int | None = Field(LEGACY_MAX_TOKENS, ge=0)
    logprobs: int | None = Field(None, ge=0, le=5)  # the legacy API's count of alternatives per token

    @field_validator("prompt", mode="before")
    @classmethod
    def _text_prompt(cls, value: Any) -> Any:
        if isinstance(value, list) and value and not all(isinstance(item, str) for item in value):
            raise PydanticCustomError(
                "unsupported_prompt", "token-id prompts are not supported by this server; send the prompt as text"
            )
        return value

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and len(value) != 1:
            raise ValueError("exactly one prompt is supported")
        return value

    def prompt_text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]

    def token_limit(self) -> int | None:
        # A null would otherwise run to the end of the context, where OpenAI stops at its default.
        return LEGACY_MAX_TOKENS if self.max_tokens is None else self.max_tokens

    def logprob_request(self) -> tuple[bool, int]:
        return self.logprobs is not None, self.logprobs or 0


class JobCreate(Strict):
    """POST /v1/jobs: a request to run in the background, polled by id."""

    endpoint: Literal["/v1/chat/completions", "/v1/completions", "/v1/embeddings"]
    body: dict[str, Any]
    metadata: dict[str, str] | None = Field(None, max_length=16)


class BatchCreate(Strict):
    """POST /v1/batches, as OpenAI defines it."""

    input_file_id: str = Field(min_length=1, max_length=128)
    endpoint: Literal["/v1/chat/completions", "/v1/completions", "/v1/embeddings"]
    completion_window: str = Field(pattern=r"^[1-9][0-9]{0,5}[smh]$")
    metadata: dict[str, str] | None = Field(None, max_length=16)
