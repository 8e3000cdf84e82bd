"""OpenAI response and stream-chunk objects, shaped as the official spec defines them."""

from dataclasses import dataclass
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


@dataclass(frozen=True)
class Choice:
    """One generated choice: its text (None: only calls), why it ended, its tokens' logprob entries when
    asked for, and the tool calls it made (OpenAI's `message.tool_calls`)."""

    text: str | None
    finish_reason: str
    logprobs: list[dict[str, Any]] | None = None
    tool_calls: list[dict[str, Any]] | None = None


def message(choice: Choice) -> dict[str, Any]:
    """A chat choice's assistant message."""
    made: dict[str, Any] = {"role": "assistant", "content": choice.text, "refusal": None}
    if choice.tool_calls:
        made["tool_calls"] = choice.tool_calls
    return made


def chat_completion(
    id_: str, model: str, created: int, choices: list[Choice], usage_: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": id_,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": [
            {
                "index": index,
                "message": message(choice),
                "logprobs": chat_logprobs(choice.logprobs),
                "finish_reason": choice.finish_reason,
            }
            for index, choice in enumerate(choices)
        ],
        "usage": usage_,
    }


def text_completion(
    id_: str, model: str, created: int, choices: list[Choice], usage_: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": id_,
        "object": "text_completion",
        "created": created,
        "model": model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": [
            {
                "index": index,
                "text": choice.text or "",
                "logprobs": text_logprobs(choice.logprobs),
                "finish_reason": choice.finish_reason,
            }
            for index, choice in enumerate(choices)
        ],
        "usage": usage_,
    }


def chat_logprobs(entries: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    """A chat choice's `logprobs`: the token entries as they are, no refusal."""
    return None if entries is None else {"content": entries, "refusal": None}


def text_logprobs(entries: list[dict[str, Any]] | None, offset: int = 0) -> dict[str, Any] | None:
    """A legacy completion choice's `logprobs`: parallel lists, the alternatives as token -> logprob maps."""
    if entries is None:
        return None
    offsets = []
    for entry in entries:
        offsets.append(offset)
        offset += len(entry["token"])
    return {
        "tokens": [entry["token"] for entry in entries],
        "token_logprobs": [entry["logprob"] for entry in entries],
        "top_logprobs": [{alt["token"]: alt["logprob"] for alt in entry["top_logprobs"]} for entry in entries],
        "text_offset": offsets,
    }


def chat_chunk(
    id_: str,
    model: str,
    created: int,
    delta: dict[str, Any] | None,
    finish_reason: str | None = None,
    usage_: dict[str, Any] | None = None,
    with_usage_field: bool = False,
    index: int = 0,
    logprobs: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A `chat.completion.chunk` of choice `index`; `delta=None` makes the usage-only chunk with no choices."""
    choice = None if delta is None else {"index": index, "delta": delta, "logprobs": chat_logprobs(logprobs)}
    return _chunk("chat.completion.chunk", id_, model, created, choice, finish_reason, usage_, with_usage_field)


def text_chunk(
    id_: str,
    model: str,
    created: int,
    text: str | None,
    finish_reason: str | None = None,
    usage_: dict[str, Any] | None = None,
    with_usage_field: bool = False,
    index: int = 0,
    logprobs: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A streamed `text_completion` of choice `index`; `text=None` makes the usage-only chunk with no choices."""
    choice = None if text is None else {"index": index, "text": text, "logprobs": text_logprobs(logprobs)}
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
    chunk: dict[str, Any] = {
        "id": id_,
        "object": object_,
        "created": created,
        "model": model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": [] if choice is None else [{**choice, "finish_reason": finish_reason}],
    }
    if with_usage_field:
        chunk["usage"] = usage_
    return chunk


def embedding_list(model: str, embeddings: list[list[float]] | list[str], prompt_tokens: int) -> dict[str, Any]:
    """OpenAI's `CreateEmbeddingResponse`: each embedding a list of floats or base64 of little-endian float32."""
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": index, "embedding": each} for index, each in enumerate(embeddings)],
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }
