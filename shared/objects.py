"""OpenAI response and stream-chunk objects, shaped as the official spec defines them."""

from typing import Any

SYSTEM_FINGERPRINT = "llamaq"


def usage(prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> dict[str, Any]:
    """OpenAI's usage object; `cached_tokens` are prompt tokens a slot's prefix cache already held."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached_tokens},
    }


def chat_completion(
    id_: str, model: str, created: int, text: str, finish_reason: str, usage_: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": id_,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": usage_,
    }


def text_completion(
    id_: str, model: str, created: int, text: str, finish_reason: str, usage_: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": id_,
        "object": "text_completion",
        "created": created,
        "model": model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}],
        "usage": usage_,
    }


def chat_chunk(
    id_: str,
    model: str,
    created: int,
    delta: dict[str, Any] | None,
    finish_reason: str | None = None,
    usage_: dict[str, Any] | None = None,
    with_usage_field: bool = False,
) -> dict[str, Any]:
    """A `chat.completion.chunk`; `delta=None` makes the usage-only chunk with no choices."""
    choice = None if delta is None else {"delta": delta}
    return _chunk("chat.completion.chunk", id_, model, created, choice, finish_reason, usage_, with_usage_field)


def text_chunk(
    id_: str,
    model: str,
    created: int,
    text: str | None,
    finish_reason: str | None = None,
    usage_: dict[str, Any] | None = None,
    with_usage_field: bool = False,
) -> dict[str, Any]:
    """A streamed `text_completion`; `text=None` makes the usage-only chunk with no choices."""
    choice = None if text is None else {"text": text}
    return _chunk("text_completion", id_, model, created, choice, finish_reason, usage_, with_usage_field)


def _chunk(
    object_: str,
    id_: str,
    model: str,
    created: int,
    choice: dict[str, Any] | None,
    finish_reason: str | None,
    usage_: dict[str, Any] | None,
    with_usage_field: bool,
) -> dict[str, Any]:
    choices = [] if choice is None else [{"index": 0, **choice, "logprobs": None, "finish_reason": finish_reason}]
    chunk: dict[str, Any] = {
        "id": id_,
        "object": object_,
        "created": created,
        "model": model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": choices,
    }
    if with_usage_field:
        chunk["usage"] = usage_
    return chunk
