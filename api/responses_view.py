"""The Response object, rendered from its stored request and its job: status, output items, usage, error.

Rendered anew on every read (and for every stream event that carries it) by the same functions, so a
response looks the same from any API replica, polled or streamed."""

from typing import Any

from shared import events
from shared.states import Status

# A job's status as the response's; a completed job cut at its token budget is "incomplete".
STATUS = {
    Status.QUEUED: "queued",
    Status.IN_PROGRESS: "in_progress",
    Status.COMPLETED: "completed",
    Status.FAILED: "failed",
    Status.CANCELLED: "cancelled",
}
ENDED = {"completed", "incomplete", "failed", "cancelled"}


def message_id(suffix: str) -> str:
    return f"msg_{suffix}"


def call_id(suffix: str, index: int) -> str:
    return f"fc_{suffix}{index:02d}"


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(suffix: str, text: str | None, status: str) -> dict[str, Any]:
    content = [] if text is None else [text_part(text)]
    return {"id": message_id(suffix), "type": "message", "role": "assistant", "status": status, "content": content}


def call_item(suffix: str, index: int, call: dict[str, Any], status: str) -> dict[str, Any]:
    function = call["function"]
    return {
        "id": call_id(suffix, index), "type": "function_call", "status": status,
        "call_id": call["id"], "name": function["name"], "arguments": function["arguments"],
    }  # fmt: skip


def output_items(completion: dict[str, Any], suffix: str) -> list[dict[str, Any]]:
    """The output of a finished job's chat completion: its text as one message, then each call."""
    choice = completion["choices"][0]
    status = "incomplete" if choice["finish_reason"] == "length" else "completed"
    message, items = choice["message"], []
    if message.get("content"):
        items.append(message_item(suffix, message["content"], status))
    for index, call in enumerate(message.get("tool_calls") or []):
        items.append(call_item(suffix, index, call, status))
    return items


def usage(completion: dict[str, Any]) -> dict[str, Any]:
    used = completion["usage"]
    return {
        "input_tokens": used["prompt_tokens"],
        "input_tokens_details": {
            "cached_tokens": used["prompt_tokens_details"]["cached_tokens"],
            "cache_write_tokens": 0,
        },
        "output_tokens": used["completion_tokens"],
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": used["total_tokens"],
    }


def status_of(job_status: str | None, terminal: events.Event | None) -> str:
    """The response's status: from its job's terminal event once there is one, else from the job's status."""
    if isinstance(terminal, events.Done):
        return "incomplete" if terminal.response["choices"][0]["finish_reason"] == "length" else "completed"
    if isinstance(terminal, events.Failed):
        return "cancelled" if terminal.error.get("code") == "cancelled" or job_status == Status.CANCELLED else "failed"
    return STATUS.get(Status(job_status), "queued") if job_status else "queued"


def response_object(
    stored: Any, job_status: str | None, terminal: events.Event | None, finished_at: float | None
) -> dict[str, Any]:
    """The Response of `stored` (a stored response: its id, creation, background flag and echoed request)."""
    status = status_of(job_status, terminal)
    suffix = stored.id.removeprefix("resp_")
    body = {
        "id": stored.id, "object": "response", "created_at": stored.created_at, "status": status,
        "background": stored.background, "completed_at": None, "error": None, "incomplete_details": None,
        "output": [], **stored.echo,
    }  # fmt: skip
    if isinstance(terminal, events.Done):
        body["output"] = output_items(terminal.response, suffix)
        body["usage"] = usage(terminal.response)
        body["completed_at"] = int(finished_at) if finished_at and status == "completed" else None
        if status == "incomplete":
            body["incomplete_details"] = {"reason": "max_output_tokens"}
    elif isinstance(terminal, events.Failed) and status == "failed":
        code = "invalid_prompt" if terminal.status == 400 else "server_error"
        body["error"] = {"code": code, "message": terminal.error["message"]}
    return body


def echo(request: Any) -> dict[str, Any]:
    """What a Response repeats of its request, with OpenAI's defaults filled in."""
    fmt = request.text.format if request.text else None
    choice = request.tool_choice
    return {
        "instructions": request.instructions,
        "max_output_tokens": request.max_output_tokens,
        "model": request.model,
        "parallel_tool_calls": request.parallel_tool_calls is not False,
        "previous_response_id": request.previous_response_id,
        "temperature": 1.0 if request.temperature is None else request.temperature,
        "top_p": 1.0 if request.top_p is None else request.top_p,
        "text": {"format": fmt.model_dump(by_alias=True, exclude_none=True) if fmt else {"type": "text"}},
        "tool_choice": choice.model_dump() if choice is not None and not isinstance(choice, str) else choice or "auto",
        "tools": [tool.model_dump() for tool in request.tools or []],
        "truncation": "disabled",
        "metadata": request.metadata or {},
        "store": request.store is not False,
        "service_tier": "default",
    } | ({"user": request.user} if request.user is not None else {})
