"""The OpenAI Batch API driven by the official client against a real Redis and a real worker."""

from typing import Any

import openai
import orjson
import pytest

from tests.probes import wait_for
from tests.spec import assert_conforms
from tests.stack import MODEL

pytestmark = pytest.mark.integration

TERMINAL = {"completed", "failed", "expired", "cancelled"}


def _line(custom_id: str, content: str, max_tokens: int = 6) -> dict[str, Any]:
    body = {"model": MODEL, "messages": [{"role": "user", "content": content}], "max_tokens": max_tokens}
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}


def _jsonl(lines: list[Any]) -> bytes:
    return b"".join((line if isinstance(line, bytes) else orjson.dumps(line)) + b"\n" for line in lines)


def _poll(client: openai.OpenAI, batch_id: str, timeout: float = 180.0) -> list[dict[str, Any]]:
    """Every state the batch was seen in, as raw JSON, until it ends."""
    seen: list[dict[str, Any]] = []

    def ended() -> bool:
        seen.append(client.batches.with_raw_response.retrieve(batch_id).http_response.json())
        return seen[-1]["status"] in TERMINAL

    wait_for(ended, f"batch {batch_id} to finish", timeout)
    return seen


def test_the_official_client_runs_a_batch_from_upload_to_output_file(client: openai.OpenAI) -> None:
    lines = [_line(f"req-{i}", f"Name a colour number {i}.") for i in range(6)]
    # Fits the API's early size check, not the model's context once tokenized: fails on the worker.
    lines.append(_line("too-long", "hello " * 80, max_tokens=2000))
    upload = client.files.with_raw_response.create(file=("requests.jsonl", _jsonl(lines)), purpose="batch")
    assert_conforms("OpenAIFile", upload.http_response.json())
    uploaded = upload.parse()
    assert client.files.content(uploaded.id).content == _jsonl(lines)

    created = client.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"purpose": "test"},
    )
    assert created.status == "validating"
    seen = _poll(client, created.id)

    final = seen[-1]
    for state in seen:
        assert_conforms("Batch", state)
    statuses = [state["status"] for state in seen]
    assert statuses[-1] == "completed"
    assert set(statuses) <= {"validating", "in_progress", "completed"} and "in_progress" in statuses
    finished = [s["request_counts"]["completed"] + s["request_counts"]["failed"] for s in seen]
    assert finished == sorted(finished)
    assert any(0 < count < 7 for count in finished), "no intermediate progress was ever visible"
    assert final["request_counts"] == {"total": 7, "completed": 6, "failed": 1}
    assert final["metadata"] == {"purpose": "test"}
    assert final["created_at"] <= final["in_progress_at"] <= final["finalizing_at"] <= final["completed_at"]

    output = [orjson.loads(text) for text in client.files.content(final["output_file_id"]).text.splitlines()]
    assert sorted(item["custom_id"] for item in output) == [f"req-{i}" for i in range(6)]
    for item in output:
        assert_conforms("BatchRequestOutput", item)
        assert item["response"]["status_code"] == 200
        assert_conforms("CreateChatCompletionResponse", item["response"]["body"])
    (failed,) = [orjson.loads(text) for text in client.files.content(final["error_file_id"]).text.splitlines()]
    assert_conforms("BatchRequestOutput", failed)
    assert failed["custom_id"] == "too-long"
    assert failed["response"]["status_code"] == 400
    assert failed["response"]["body"]["error"]["code"] == "context_length_exceeded"
    output_file = client.files.with_raw_response.retrieve(final["output_file_id"]).http_response.json()
    assert_conforms("OpenAIFile", output_file)
    assert output_file["purpose"] == "batch_output"

    assert client.files.delete(uploaded.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(uploaded.id)


def test_a_malformed_file_fails_validation_naming_its_lines(client: openai.OpenAI) -> None:
    lines = [_line("a", "hi"), b"{oops", _line("a", "again"), {**_line("c", "hi"), "url": "/v1/completions"}]
    uploaded = client.files.create(file=("bad.jsonl", _jsonl(lines)), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")

    final = _poll(client, batch.id, timeout=30)[-1]
    assert_conforms("Batch", final)
    assert final["status"] == "failed" and final["failed_at"] >= final["created_at"]
    parsed = client.batches.retrieve(batch.id)
    assert parsed.errors is not None and parsed.errors.data is not None
    assert [(error.line, error.code) for error in parsed.errors.data] == [
        (2, "invalid_json_line"),
        (3, "duplicate_custom_id"),
        (4, "mismatched_url"),
    ]


def test_batches_list_newest_first_with_a_cursor(client: openai.OpenAI) -> None:
    uploaded = client.files.create(file=("one.jsonl", _jsonl([b"nope"])), purpose="batch")
    ids = [
        client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="1h").id
        for _ in range(3)
    ]

    first = client.batches.list(limit=2)
    assert [batch.id for batch in first.data] == ids[::-1][:2]
    assert first.has_more
    listed = [batch.id for batch in client.batches.list(limit=2)]  # the client follows the cursor
    assert listed[:3] == ids[::-1]
    assert len(listed) == len(set(listed))
