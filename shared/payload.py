"""The job payload the API enqueues and the worker runs: JSON, no code, no pickle."""

import secrets
from typing import Any, Literal

from pydantic import BaseModel, Field

from shared.errors import ContextLengthExceeded

# The worker's entry point, referred to by path so the API never imports worker code.
JOB_FUNCTION = "worker.task.run"
# RQ's dashboard renders descriptions unescaped: keep user text out of them.
JOB_DESCRIPTION = "llamaq generation"


class Params(BaseModel):
    max_tokens: int | None = None  # what the request asked for: prompt + this must fit the context
    # The server's budget when the request named none (LLAMAQ_DEFAULT_MAX_TOKENS): cut short by the context.
    default_max_tokens: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    stop: list[str] = Field(default_factory=list)
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    response_format: dict[str, Any] | None = None
    n: int = 1  # choices, each a sequence of its own from one prompt pass
    logprobs: bool = False
    top_logprobs: int = 0


class ChatMessage(BaseModel):
    role: str
    content: str
    tool_calls: list[dict[str, Any]] | None = None  # an assistant's calls, as OpenAI shapes them
    tool_call_id: str | None = None  # the call a tool message answers


class Tools(BaseModel):
    """The function tools a chat job offers and what the model may do with them."""

    functions: list[dict[str, Any]]  # OpenAI's function definitions: name, description, parameters
    choice: Literal["auto", "required", "function"]
    function: str | None = None  # the one function a "function" choice names
    parallel: bool = True  # several calls in one answer


class JobPayload(BaseModel):
    id: str
    kind: Literal["chat", "completion", "embedding"]
    model: str
    lane: str
    created: int
    messages: list[ChatMessage] | None = None
    prompt: str | None = None
    params: Params = Field(default_factory=Params)
    tools: Tools | None = None  # None: no tools, or tool_choice "none"
    # An embedding job's inputs: texts, or token ids of the model's own vocabulary; its answer's format and size.
    input: list[str] | list[list[int]] | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None
    # The HTTP request that submitted the job, so the worker's job log line can name it.
    request_id: str | None = None
    # W3C Trace Context of the submitting request (only with LLAMAQ_TRACING=otlp): the worker's spans join its trace.
    traceparent: str | None = None
    tracestate: str | None = None


def new_job_id() -> str:
    """Random, unguessable job id (128 bits)."""
    return "job_" + secrets.token_hex(16)


def response_id(job_id: str, kind: str) -> str:
    """OpenAI-shaped response id derived from the job id."""
    suffix = job_id.removeprefix("job_")
    return ("chatcmpl-" if kind == "chat" else "cmpl-") + suffix


def check_context(job: JobPayload, n_ctx: int, prompt_tokens: int, exact: bool) -> None:
    """Refuse a job whose prompt plus `max_tokens` cannot fit the model's context.

    The API checks early with a lower bound of the prompt's tokens (`exact=False`), the worker after
    tokenizing (`exact=True`); both refuse with the same OpenAI error.
    """
    limit = job.params.max_tokens or 0
    wanted = prompt_tokens + limit
    if prompt_tokens < n_ctx and wanted <= n_ctx:
        return
    param = "messages" if job.kind == "chat" else "prompt"
    least, in_prompt = ("", f"{prompt_tokens}") if exact else ("at least ", f"{prompt_tokens} or more")
    raise ContextLengthExceeded(
        f"This model's maximum context length is {n_ctx} tokens. However, you requested {least}{wanted} tokens "
        f"({in_prompt} in the {param}, {limit} in the completion). "
        f"Please reduce the length of the {param} or completion.",
        param=param,
    )
