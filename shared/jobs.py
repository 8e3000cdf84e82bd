"""The job payload the API enqueues and the worker runs: JSON, no code, no pickle."""

import secrets
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field

# The worker's entry point, referred to by path so the API never imports worker code.
JOB_FUNCTION = "worker.jobs.run"
# RQ's dashboard renders descriptions unescaped: keep user text out of them.
JOB_DESCRIPTION = "llamaq generation"


class Status(StrEnum):
    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


TERMINAL = frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELLED, Status.EXPIRED})


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


class ChatMessage(BaseModel):
    role: str
    content: str


class JobPayload(BaseModel):
    id: str
    kind: Literal["chat", "completion"]
    model: str
    lane: str
    created: int
    messages: list[ChatMessage] | None = None
    prompt: str | None = None
    params: Params
    # The HTTP request that submitted the job, so the worker's job log line can name it.
    request_id: str | None = None


def new_job_id() -> str:
    """Random, unguessable job id (128 bits)."""
    return "job_" + secrets.token_hex(16)


def response_id(job_id: str, kind: str) -> str:
    """OpenAI-shaped response id derived from the job id."""
    suffix = job_id.removeprefix("job_")
    return ("chatcmpl-" if kind == "chat" else "cmpl-") + suffix
