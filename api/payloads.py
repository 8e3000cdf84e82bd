"""Turn a validated OpenAI request into the job payload, applying the server's caps."""

import time
from typing import Any, Literal

from pydantic import ValidationError

from api.errors import from_errors
from shared import names
from shared.embedding_schema import EmbeddingRequest
from shared.errors import InvalidRequest
from shared.payload import ChatMessage, JobPayload, Params, Tools, new_job_id
from shared.schemas import ChatCompletionRequest, CompletionRequest
from shared.settings import Settings
from shared.tools import chosen


def _params(body: ChatCompletionRequest | CompletionRequest, settings: Settings) -> Params:
    if body.stream_options is not None and not body.stream:
        raise InvalidRequest(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.", param="stream_options"
        )
    limit = body.token_limit()
    if limit is not None and limit > settings.max_tokens_cap:
        param = "max_completion_tokens" if getattr(body, "max_completion_tokens", None) else "max_tokens"
        raise InvalidRequest(
            f"'{param}' is {limit}, above this server's limit of {settings.max_tokens_cap}.", param=param
        )
    response_format = None
    if isinstance(body, ChatCompletionRequest) and body.response_format is not None:
        response_format = body.response_format.model_dump(by_alias=True)
    choices = body.n or 1
    if choices > settings.slots:
        raise InvalidRequest(
            f"'n' is {choices}, above this server's {settings.slots} slots a worker (LLAMAQ_SLOTS).", param="n"
        )
    logprobs, top_logprobs = body.logprob_request()
    # Many clients never send a limit (LangChain, the Vercel AI SDK, pydantic-ai): a small model left to run
    # to the end of its context holds a worker for minutes.
    default = min(settings.default_max_tokens, settings.max_tokens_cap) if settings.default_max_tokens else None
    return Params(
        max_tokens=limit,
        default_max_tokens=default if limit is None else None,
        temperature=1.0 if body.temperature is None else body.temperature,
        top_p=1.0 if body.top_p is None else body.top_p,
        stop=body.stop_list(),
        seed=body.seed,
        presence_penalty=body.presence_penalty or 0.0,
        frequency_penalty=body.frequency_penalty or 0.0,
        response_format=response_format,
        n=choices,
        logprobs=logprobs,
        top_logprobs=top_logprobs,
    )


def chat_payload(body: ChatCompletionRequest, settings: Settings, lane: str = names.INTERACTIVE) -> JobPayload:
    if len(body.messages) > settings.max_messages:
        raise InvalidRequest(
            f"Too many messages: {len(body.messages)}, the limit is {settings.max_messages}.",
            param="messages",
        )
    messages = [
        ChatMessage(
            role=m.role if m.role != "developer" else "system",
            content=m.text(),
            tool_calls=[call.model_dump() for call in m.tool_calls] if m.tool_calls else None,
            tool_call_id=m.tool_call_id,
        )
        for m in body.messages
    ]
    return _payload("chat", body, settings, lane, messages=messages, tools=_tools(body))


def _tools(body: ChatCompletionRequest) -> Tools | None:
    choice, function = chosen(body.tools, body.tool_choice)
    if choice is None:
        return None
    functions = [tool.function.model_dump(exclude_none=True) for tool in body.tools or []]
    parallel = body.parallel_tool_calls is not False
    return Tools(functions=functions, choice=choice, function=function, parallel=parallel)


def completion_payload(body: CompletionRequest, settings: Settings, lane: str = names.INTERACTIVE) -> JobPayload:
    return _payload("completion", body, settings, lane, prompt=body.prompt_text())


def embedding_payload(body: EmbeddingRequest, settings: Settings, lane: str = names.INTERACTIVE) -> JobPayload:
    return JobPayload(
        id=new_job_id(),
        kind="embedding",
        model=body.model,
        lane=lane,
        created=int(time.time()),
        input=body.inputs(),
        encoding_format=body.encoding_format or "float",
        dimensions=body.dimensions,
    )


def _payload(
    kind: Literal["chat", "completion"],
    body: ChatCompletionRequest | CompletionRequest,
    settings: Settings,
    lane: str,
    **content: Any,
) -> JobPayload:
    """The job of one request: a new id, the model and lane, the server's sampling caps, its messages or prompt."""
    params, created = _params(body, settings), int(time.time())
    return JobPayload(
        id=new_job_id(), kind=kind, model=body.model, lane=lane, created=created, params=params, **content
    )


_REQUESTS: dict[str, type[ChatCompletionRequest | CompletionRequest | EmbeddingRequest]] = {
    "/v1/chat/completions": ChatCompletionRequest,
    "/v1/completions": CompletionRequest,
    "/v1/embeddings": EmbeddingRequest,
}


def payload_for(endpoint: str, body: dict[str, Any], settings: Settings, lane: str, prefix: str) -> JobPayload:
    """Validate `body` exactly as `endpoint` would, for background and batch work (never streamed)."""
    model = _REQUESTS[endpoint]
    try:
        request = model.model_validate(body)
    except ValidationError as exc:
        raise from_errors(list(exc.errors()), body, prefix) from None
    if isinstance(request, EmbeddingRequest):
        return embedding_payload(request, settings, lane)
    if request.stream:
        raise InvalidRequest(
            "Background and batch requests are not streamed; follow GET /v1/jobs/{id}/events instead.",
            param=f"{prefix}.stream",
        )
    try:
        if isinstance(request, ChatCompletionRequest):
            return chat_payload(request, settings, lane)
        return completion_payload(request, settings, lane)
    except InvalidRequest as exc:
        raise within(exc, prefix) from None


def within(exc: InvalidRequest, prefix: str) -> InvalidRequest:
    """The same error, its `param` named from the enclosing request (`body.max_tokens`)."""
    exc.param = f"{prefix}.{exc.param}" if exc.param else prefix
    return exc
