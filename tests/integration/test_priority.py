"""Interactive requests go before batch work: with a 200-line batch running, an interactive request
waits at most for the batch job the worker is already generating."""

from datetime import datetime

import openai
import orjson
import pytest
from redis import Redis

from shared import names, rqcontract
from tests.probes import wait_for
from tests.stack import MODEL, Stack

pytestmark = pytest.mark.integration

LINES = 200


def _batch_file(client: openai.OpenAI) -> str:
    lines = [
        {
            "custom_id": f"line-{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": MODEL,
                "messages": [{"role": "user", "content": f"Say {i}"}],
                "max_tokens": 3,
            },
        }
        for i in range(LINES)
    ]
    content = b"".join(orjson.dumps(line) + b"\n" for line in lines)
    return client.files.create(file=("many.jsonl", content), purpose="batch").id


def _enqueued_at(redis: Redis, job_id: str) -> float:
    stamp = redis.hget(rqcontract.job_key(job_id), "enqueued_at").decode()
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def test_interactive_requests_overtake_a_running_batch(stack: Stack, client: openai.OpenAI) -> None:
    batch = client.batches.create(
        input_file_id=_batch_file(client), endpoint="/v1/chat/completions", completion_window="1h"
    )
    redis = Redis.from_url(stack.redis_url)
    batch_lane = rqcontract.queue_key(MODEL, names.BATCH)
    try:
        # Running, and with work waiting behind the running line, so there is something to overtake.
        wait_for(
            lambda: client.batches.retrieve(batch.id).request_counts.completed >= 3 and redis.llen(batch_lane) >= 10,
            "the batch to be running with lines waiting",
        )
        interactive = []
        for i in range(3):
            reply = client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": f"Quick {i}"}], max_tokens=4
            )
            interactive.append("job_" + reply.id.removeprefix("chatcmpl-"))
        done = client.batches.retrieve(batch.id).request_counts.completed
        wait_for(lambda: client.batches.retrieve(batch.id).request_counts.completed >= done + 2, "the batch to go on")
        client.batches.cancel(batch.id)
        wait_for(lambda: client.batches.retrieve(batch.id).status == "cancelled", "the batch to be cancelled")

        line_jobs = [raw.decode() for raw in redis.lrange(names.batch_lines_key(batch.id, "jobs"), 0, -1)]
        starts = [float(raw) for job in line_jobs if (raw := redis.hget(names.job_key(job), "started_at"))]
        for job_id in interactive:
            queued = _enqueued_at(redis, job_id)
            started = float(redis.hget(names.job_key(job_id), "started_at"))
            overtaken = [start for start in starts if queued < start < started]
            # Only a batch job popped in the instant before the interactive one arrived may start first.
            assert len(overtaken) <= 1, f"{len(overtaken)} batch jobs started while {job_id} waited"
        last_interactive = max(float(redis.hget(names.job_key(job), "started_at")) for job in interactive)
        assert any(start > last_interactive for start in starts), "the batch had no queued work left to overtake"
        assert len(starts) < LINES
    finally:
        redis.close()
