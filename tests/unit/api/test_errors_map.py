"""api/errors.py: validation errors become OpenAI error objects naming the offending `param`."""

from typing import Any

import pytest
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from api.errors import from_errors, from_validation
from shared.errors import InvalidRequest
from shared.schemas import ChatCompletionRequest, CompletionRequest


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": "Hi"}], **fields}


def mapped(body: Any, model: type = ChatCompletionRequest, prefix: str = "") -> dict[str, Any]:
    """The OpenAI error object `body` turns into (the test fails when `body` is valid)."""
    with pytest.raises(ValidationError) as caught:
        model.model_validate(body)
    error = from_errors(list(caught.value.errors()), body, prefix)
    assert isinstance(error, InvalidRequest)
    assert error.status == 400
    obj = error.to_dict()
    assert set(obj) == {"error"}
    assert set(obj["error"]) == {"message", "type", "param", "code"}
    assert obj["error"]["type"] == "invalid_request_error"
    return obj["error"]


def test_missing_top_level_field() -> None:
    error = mapped({"model": "m"})
    assert error["param"] == "messages"
    assert error["message"] == "Missing required parameter: 'messages'."


def test_missing_nested_field_names_its_path() -> None:
    error = mapped(chat(messages=[{"role": "user", "content": "a"}, {"role": "user"}]))
    assert error["param"] == "messages[1].content"
    assert "'messages[1].content'" in error["message"]


def test_unsupported_field_says_so() -> None:
    error = mapped(chat(functions=[{"name": "f"}]))
    assert error["param"] == "functions"
    assert error["message"] == (
        "'functions' is not supported by this server; only its default ([] or null) is accepted."
    )


def test_unsupported_field_of_a_message_names_its_path() -> None:
    history = [{"role": "user", "content": "a"}, {"role": "assistant", "content": None, "audio": {"id": "x"}}]
    error = mapped(chat(messages=history))
    assert error["param"] == "messages[1].audio"
    assert "'audio' is not supported by this server" in error["message"]


def test_legacy_function_messages_are_refused_by_role() -> None:
    error = mapped(chat(messages=[{"role": "function", "content": "42", "name": "f"}]))
    assert error["param"] == "messages[0].role"
    assert error["message"].startswith("'function' messages (the deprecated function calling) are not supported")
    assert "'tool' message" in error["message"]


def test_a_tool_message_needs_its_call_id() -> None:
    error = mapped(chat(messages=[{"role": "tool", "content": "42"}]))
    assert error["param"] == "messages[0]"
    assert "tool_call_id" in error["message"]


def test_unknown_field_is_unrecognized() -> None:
    error = mapped(chat(frobnicate=1))
    assert error["param"] == "frobnicate"
    assert error["message"] == "Unrecognized request argument supplied: frobnicate"


def test_unknown_nested_field_names_its_path() -> None:
    error = mapped(chat(messages=[{"role": "user", "content": [{"type": "text", "text": "x", "tool_calls": []}]}]))
    assert error["param"] == "messages[0].content[0].tool_calls"
    assert "tool_calls" in error["message"]


def test_wrong_type_names_the_field() -> None:
    error = mapped(chat(temperature="hot"))
    assert error["param"] == "temperature"
    assert error["message"].startswith("Invalid value for 'temperature': ")


def test_value_error_message_is_kept_without_pydantic_prefix() -> None:
    error = mapped(chat(stop=["a", "b", "c", "d", "e"]))
    assert error["param"] == "stop"
    assert error["message"] == "Invalid value for 'stop': at most 4 stop sequences."


def test_out_of_range_value() -> None:
    error = mapped(chat(messages=[{"role": "user", "content": "x"}], max_tokens=0))
    assert error["param"] == "max_tokens"


@pytest.mark.parametrize("body", [[], None, "text", 3])
def test_body_that_is_not_an_object(body: Any) -> None:
    error = mapped(body)
    assert error["param"] is None
    assert error["message"] == "The request body must be a JSON object."


def test_bad_text_part_names_the_part_not_the_string_branch() -> None:
    part = {"type": "image_url", "image_url": {"url": "http://x"}}
    error = mapped(chat(messages=[{"role": "user", "content": [part]}]))
    assert error["param"] == "messages[0].content[0].type"
    assert "valid string" not in error["message"]


def test_lone_surrogate_in_a_text_part_names_the_part() -> None:
    content = [{"type": "text", "text": "a \ud800"}]
    error = mapped(chat(messages=[{"role": "user", "content": content}]))
    assert error["param"] == "messages[0].content[0].text"
    assert "lone surrogate" in error["message"]


def test_content_of_the_wrong_type_names_the_content() -> None:
    error = mapped(chat(messages=[{"role": "user", "content": 5}]))
    assert error["param"] == "messages[0].content"


def test_prefix_places_the_param_inside_an_enclosing_request() -> None:
    error = mapped({"model": "m", "prompt": "x", "echo": True}, CompletionRequest, prefix="body")
    assert error["param"] == "body.echo"
    assert mapped({"prompt": "x"}, CompletionRequest, prefix="body")["param"] == "body.model"
    assert mapped([], CompletionRequest, prefix="body")["param"] == "body"


def test_no_errors_still_gives_an_error_object() -> None:
    assert from_errors([], {}).to_dict()["error"]["message"] == "The request body is invalid."


def _request_error(errors: list[dict[str, Any]], body: Any) -> dict[str, Any]:
    return from_validation(RequestValidationError(errors, body=body)).to_dict()["error"]


def test_fastapi_body_location_is_stripped() -> None:
    errors = [{"type": "float_type", "loc": ("body", "temperature"), "msg": "Input should be a valid number"}]
    error = _request_error(errors, chat(temperature="x"))
    assert error["param"] == "temperature"
    assert error["message"] == "Invalid value for 'temperature': Input should be a valid number."


def test_malformed_json() -> None:
    errors = [{"type": "json_invalid", "loc": ("body", 1), "msg": "JSON decode error", "ctx": {"error": "x"}}]
    error = _request_error(errors, "{")
    assert error["param"] is None
    assert "could not parse the JSON body" in error["message"]


def test_missing_body_never_names_a_parameter_none() -> None:
    error = _request_error([{"type": "missing", "loc": ("body",), "msg": "Field required"}], None)
    assert error["param"] is None
    assert "None" not in error["message"]
    assert "JSON object" in error["message"]
