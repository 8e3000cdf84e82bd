"""The body of POST /v1/embeddings as OpenAI defines it (`CreateEmbeddingRequest`), with clear refusals of bad input."""

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from shared.schemas import Strict, Text

# Inputs one request may carry, as OpenAI allows.
MAX_INPUTS = 2048

TokenIds = Annotated[list[int], Field(min_length=1)]


def _refuse(message: str) -> PydanticCustomError:
    return PydanticCustomError("invalid_input", message)


def _check_input(value: Any) -> Any:
    """A non-empty string, or a non-empty array of non-empty strings, token ids, or token-id arrays (one kind)."""
    if isinstance(value, str):
        if not value:
            raise _refuse("input must not be an empty string")
        return value
    if not isinstance(value, list) or not value:
        raise _refuse("input must be a string or a non-empty array of strings, token ids or token-id arrays")
    if len(value) > MAX_INPUTS:
        raise _refuse(f"input may hold at most {MAX_INPUTS} items; it holds {len(value)}")
    if all(isinstance(each, str) for each in value):
        if any(not each for each in value):
            raise _refuse("input must not contain empty strings")
    elif not (all(_is_token(each) for each in value) or all(_is_tokens(each) for each in value)):
        raise _refuse(
            "input items must be all strings, all token ids (integers from 0), or all non-empty arrays of token ids"
        )
    return value


def _is_token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_tokens(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(_is_token(token) for token in value)


class EmbeddingRequest(Strict):
    model: Text = Field(min_length=1, max_length=256)
    input: Text | list[Text] | list[int] | list[TokenIds]
    encoding_format: Literal["float", "base64"] | None = "float"
    dimensions: int | None = Field(None, ge=1)
    user: Text | None = Field(None, max_length=256)

    _input = field_validator("input", mode="before")(_check_input)

    def inputs(self) -> list[str] | list[list[int]]:
        """The inputs as a list of texts or of token sequences."""
        value = self.input
        if isinstance(value, str):
            return [value]
        if all(isinstance(each, str) for each in value):
            return [each for each in value if isinstance(each, str)]
        if all(isinstance(each, int) for each in value):
            return [[each for each in value if isinstance(each, int)]]
        return [each for each in value if isinstance(each, list)]
