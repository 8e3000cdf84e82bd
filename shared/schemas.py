"""OpenAI request bodies the server accepts; anything else is refused, never dropped."""

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

MAX_STOP_CHARS = 256

# OpenAI fields this server knows but does not implement: refused with a message saying so.
UNSUPPORTED_FIELDS = frozenset(
    {
        "tools",
        "tool_choice",
        "functions",
        "function_call",
        "parallel_tool_calls",
        "logprobs",
        "top_logprobs",
        "logit_bias",
        "audio",
        "modalities",
        "prediction",
        "reasoning_effort",
        "service_tier",
        "store",
        "web_search_options",
        "metadata",
        "echo",
        "suffix",
        "best_of",
        "verbosity",
        "prompt_cache_key",
        "safety_identifier",
    }
)


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


class Message(Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: Annotated[Text | list[TextPart], Field(union_mode="left_to_right")]
    name: Text | None = Field(None, max_length=256)

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class StreamOptions(Strict):
    include_usage: bool = False


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
    model: Text = Field(min_length=1, max_length=256)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    stop: Text | list[Text] | None = None
    seed: int | None = Field(None, ge=-(2**63), le=2**64 - 1)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    user: Text | None = Field(None, max_length=256)
    n: int | None = None

    @field_validator("n")
    @classmethod
    def _only_one_choice(cls, value: int | None) -> int | None:
        if value not in (None, 1):
            raise ValueError("only n=1 is supported")
        return value

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
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    response_format: ResponseFormat | None = None

    def token_limit(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens


# OpenAI's default `max_tokens` for legacy completions.
LEGACY_MAX_TOKENS = 16


class CompletionRequest(SamplingFields):
    prompt: Text | list[Text]
    max_tokens: int | None = Field(LEGACY_MAX_TOKENS, ge=0)

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


class JobCreate(Strict):
    """POST /v1/jobs: a request to run in the background, polled by id."""

    endpoint: Literal["/v1/chat/completions", "/v1/completions"]
    body: dict[str, Any]
    metadata: dict[str, str] | None = Field(None, max_length=16)


class BatchCreate(Strict):
    """POST /v1/batches, as OpenAI defines it."""

    input_file_id: str = Field(min_length=1, max_length=128)
    endpoint: Literal["/v1/chat/completions", "/v1/completions"]
    completion_window: str = Field(pattern=r"^[1-9][0-9]{0,5}[smh]$")
    metadata: dict[str, str] | None = Field(None, max_length=16)
