"""A Responses request as the chat job it runs: its messages (earlier turns, instructions, input items), its
tools and sampling; and its input items as `GET /v1/responses/{id}/input_items` lists them."""

from typing import Any

from pydantic import ValidationError

from api.errors import from_errors
from api.payloads import chat_payload
from shared.payload import JobPayload
from shared.responses import FunctionCallItem, FunctionCallOutputItem, MessageItem, ResponseCreate
from shared.schemas import ChatCompletionRequest
from shared.settings import Settings

Item = MessageItem | FunctionCallItem | FunctionCallOutputItem


def job_for(body: ResponseCreate, context: list[dict[str, Any]], settings: Settings, lane: str) -> JobPayload:
    """The chat job of a response; `context` is the conversation of `previous_response_id` (chat messages)."""
    instructions = [{"role": "system", "content": body.instructions}] if body.instructions else []
    request: dict[str, Any] = {"model": body.model, "messages": instructions + context + messages(body.items())}
    fields = {
        "max_completion_tokens": body.max_output_tokens,
        "temperature": body.temperature,
        "top_p": body.top_p,
        "parallel_tool_calls": body.parallel_tool_calls,
        "user": body.user,
        "safety_identifier": body.safety_identifier,
        "prompt_cache_key": body.prompt_cache_key,
    }
    request |= {key: value for key, value in fields.items() if value is not None}
    if body.text is not None and body.text.format is not None:
        request["response_format"] = body.text.chat_format()
    if body.tools:
        request["tools"] = [{"type": "function", "function": chat_function(tool)} for tool in body.tools]
    if body.tool_choice is not None:
        choice = body.tool_choice
        request["tool_choice"] = (
            choice if isinstance(choice, str) else {"type": "function", "function": {"name": choice.name}}
        )
    try:
        chat = ChatCompletionRequest.model_validate(request)
    except ValidationError as exc:
        raise from_errors(list(exc.errors()), request) from None
    return chat_payload(chat, settings, lane)


def chat_function(tool: Any) -> dict[str, Any]:
    return tool.model_dump(exclude={"type"}, exclude_none=True)


def messages(items: list[Item]) -> list[dict[str, Any]]:
    """Input items as chat messages: a run of function calls joins the assistant turn that made them."""
    made: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, MessageItem):
            made.append({"role": item.role, "content": item.text()})
        elif isinstance(item, FunctionCallOutputItem):
            made.append({"role": "tool", "tool_call_id": item.call_id, "content": item.text()})
        else:
            call = {
                "id": item.call_id,
                "type": "function",
                "function": {"name": item.name, "arguments": item.arguments},
            }
            if made and made[-1]["role"] == "assistant":
                made[-1].setdefault("tool_calls", []).append(call)
            else:
                made.append({"role": "assistant", "content": None, "tool_calls": [call]})
    return made


def reply_messages(completion: dict[str, Any]) -> list[dict[str, Any]]:
    """The assistant turn a finished response adds to its conversation (from its chat completion)."""
    message = completion["choices"][0]["message"]
    turn: dict[str, Any] = {"role": "assistant", "content": message.get("content")}
    if message.get("tool_calls"):
        turn["tool_calls"] = message["tool_calls"]
    elif not turn["content"]:
        turn["content"] = ""
    return [turn]


def input_items(items: list[Item], suffix: str) -> list[dict[str, Any]]:
    """The input as stored items, each with an id of its own."""
    stored = []
    for index, item in enumerate(items):
        if isinstance(item, MessageItem):
            part = "output_text" if item.role == "assistant" else "input_text"
            content: list[dict[str, Any]] = [{"type": part, "text": item.text()}]
            if part == "output_text":
                content[0] |= {"annotations": [], "logprobs": []}
            body = {"type": "message", "role": item.role, "content": content}
            stored.append({"id": f"msg_{suffix}{index:04d}", **body, "status": "completed"})
        elif isinstance(item, FunctionCallItem):
            body = {"type": "function_call", "call_id": item.call_id, "name": item.name, "arguments": item.arguments}
            stored.append({"id": f"fc_{suffix}{index:04d}", **body, "status": "completed"})
        else:
            body = {"type": "function_call_output", "call_id": item.call_id, "output": item.text()}
            stored.append({"id": f"fco_{suffix}{index:04d}", **body, "status": "completed"})
    return stored
