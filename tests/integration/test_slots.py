"""Several jobs in one worker's slots, through the whole system: each one's answer is its answer alone.

One worker, four slots (the default), the real model: greedy answers generated beside others equal the
same request answered alone; a job that is cancelled, times out or is grammar-bound leaves the others'
answers as they were; a long prompt joins while others decode; a prompt seen before is served from the
slot's cache; background work shares the slots with interactive work; and a worker killed with several
jobs in flight loses none of its background jobs.
"""

import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from redis import Redis

from shared import names
from tests.integration.test_backpressure import COUNTING, TERMINAL, record
from tests.probes import job_of, wait_for
from tests.spec import assert_conforms
from tests.stack import MODEL, Stack, running_stack

pytestmark = pytest.mark.integration

QUESTIONS = [
    "Name three rivers in Europe.",
    "What is bread made of?",
    "Describe a cat in one sentence.",
    "Why is the sky blue?",
]


def ask(client: openai.OpenAI, question: str, max_tokens: int = 32, **extra: Any) -> str:
    messages = [{"role": "user", "content": question}]
    reply = client.chat.completions.create(
        model=MODEL, messages=messages, max_tokens=max_tokens, temperature=0, **extra
    )
    return reply.choices[0].message.content or ""


def together(calls: list[Any]) -> list[Any]:
    """Run the calls at once, each on its own thread; their results in order."""
    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(lambda call: call(), calls))


def busy_slots(redis: Redis) -> int:
    rows = [
        redis.hget(names.worker_key(raw.decode()), "slots_busy")
        for raw in redis.zrange(names.model_workers_key(MODEL), 0, -1)
    ]
    return sum(int(row or 0) for row in rows)


def test_answers_generated_together_equal_the_answers_alone(stack: Stack, client: openai.OpenAI) -> None:
    alone = [ask(client, question) for question in QUESTIONS]
    redis = Redis.from_url(stack.redis_url)
    seen: list[int] = []

    def watch() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(seen) < 200:
            seen.append(busy_slots(redis))
            time.sleep(0.01)

    answers = together([watch, *[lambda q=q: ask(client, q) for q in QUESTIONS]])[1:]
    assert answers == alone
    assert max(seen) >= 2, "the jobs shared the worker's slots"
    redis.close()


def cached_prompt_tokens(stack: Stack) -> float:
    """`llamaq_prompt_tokens_cached_total` of the interactive lane, from /metrics."""
    for line in httpx.get(f"{stack.base_url}/metrics", timeout=10).text.splitlines():
        if line.startswith("llamaq_prompt_tokens_cached_total{") and 'lane="interactive"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_repeated_prompt_is_served_from_the_slot_cache(stack: Stack, client: openai.OpenAI) -> None:
    messages = [{"role": "system", "content": "You are a terse assistant. " * 20}, {"role": "user", "content": "Hi"}]
    first = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=8, temperature=0)
    assert first.usage is not None
    again = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=8, temperature=0)
    assert first.usage is not None and again.usage is not None and again.usage.prompt_tokens_details is not None
    assert again.usage.prompt_tokens_details.cached_tokens >= again.usage.prompt_tokens - 2
    assert again.choices[0].message.content == first.choices[0].message.content
    counted = again.usage.prompt_tokens_details.cached_tokens
    assert wait_for(lambda: cached_prompt_tokens(stack) >= counted, "the cached tokens counted in the metrics", 10)


def test_a_cancelled_stream_leaves_the_others_unchanged(client: openai.OpenAI) -> None:
    alone = [ask(client, question) for question in QUESTIONS[:3]]

    def leave_early() -> int:
        stream = client.chat.completions.create(
            model=MODEL, messages=COUNTING, max_tokens=400, temperature=0, stream=True
        )
        received = 0
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                received += 1
            if received >= 3:
                break
        stream.close()
        return received

    results = together([leave_early, *[lambda q=q: ask(client, q) for q in QUESTIONS[:3]]])
    assert results[0] == 3 and results[1:] == alone


def test_a_grammar_bound_job_beside_free_ones(client: openai.OpenAI) -> None:
    alone = [ask(client, question) for question in QUESTIONS[:2]]
    json_format = {"response_format": {"type": "json_object"}}
    bound, *free = together(
        [
            lambda: ask(client, "Describe a dog as JSON.", max_tokens=48, **json_format),
            *[lambda q=q: ask(client, q) for q in QUESTIONS[:2]],
        ]
    )
    assert free == alone
    assert bound.lstrip().startswith("{")
    if bound.rstrip().endswith("}"):  # not cut by max_tokens: then it parses
        json.loads(bound)


def test_a_long_prompt_joins_while_others_decode(client: openai.OpenAI) -> None:
    alone = [ask(client, question, max_tokens=48) for question in QUESTIONS[:2]]
    long_prompt = "Summarise this text. " + "The river flows through the old town and past the mill. " * 120

    def long_one() -> str:
        time.sleep(0.3)  # the others are decoding when it arrives
        return ask(client, long_prompt, max_tokens=8)

    long_answer, *others = together([long_one, *[lambda q=q: ask(client, q, max_tokens=48) for q in QUESTIONS[:2]]])
    assert others == alone
    assert long_answer


def test_background_jobs_share_the_slots_with_interactive_ones(stack: Stack, client: openai.OpenAI) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": QUESTIONS[0]}], "max_tokens": 32, "temperature": 0}
    with httpx.Client(base_url=stack.base_url, timeout=30) as http:
        job_ids = [
            http.post("/v1/jobs", json={"endpoint": "/v1/chat/completions", "body": body}).json()["id"]
            for _ in range(2)
        ]
        interactive = together([lambda q=q: ask(client, q) for q in QUESTIONS[1:3]])

        def finished() -> list[dict[str, Any]] | None:
            jobs = [http.get(f"/v1/jobs/{job_id}").json() for job_id in job_ids]
            return jobs if all(job["status"] in TERMINAL for job in jobs) else None

        jobs = wait_for(finished, "the background jobs to end", timeout=60)
    alone = ask(client, QUESTIONS[0])
    assert [job["status"] for job in jobs] == ["completed", "completed"]
    assert [job["response"]["choices"][0]["message"]["content"] for job in jobs] == [alone, alone]
    assert interactive == [ask(client, q) for q in QUESTIONS[1:3]]


def test_a_job_that_times_out_leaves_the_others_to_finish(fresh_redis_url: str, logs_dir: Path) -> None:
    with running_stack(fresh_redis_url, logs_dir, job_timeout="3") as stack:
        client = openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key="unused", max_retries=0, timeout=60)

        def too_long() -> str:
            try:
                client.chat.completions.create(model=MODEL, messages=COUNTING, max_tokens=1500, temperature=0)
            except openai.APIStatusError as exc:
                return str(exc.body)
            return "finished"

        alone = ask(client, QUESTIONS[0], max_tokens=16)
        timed_out, short = together([too_long, lambda: ask(client, QUESTIONS[0], max_tokens=16)])
        assert "job_timeout" in timed_out
        assert short == alone


def test_a_worker_killed_with_several_jobs_in_flight(fresh_redis_url: str, logs_dir: Path) -> None:
    """Its background jobs are retried to completion by the next worker; its stream ends with an error."""
    with running_stack(fresh_redis_url, logs_dir, heartbeat_ttl="3") as stack:
        redis = Redis.from_url(fresh_redis_url)
        client = openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key="unused", max_retries=0, timeout=60)
        body = {"model": MODEL, "messages": COUNTING, "max_tokens": 300, "temperature": 0}
        with httpx.Client(base_url=stack.base_url, timeout=30) as http:
            job_ids = [
                http.post("/v1/jobs", json={"endpoint": "/v1/chat/completions", "body": body}).json()["id"]
                for _ in range(3)
            ]
            stream = client.chat.completions.create(
                model=MODEL, messages=COUNTING, max_tokens=1000, temperature=0, stream=True
            )
            first = next(iter(stream))
            wait_for(lambda: all(record(redis, job).get("status") == "in_progress" for job in job_ids), "jobs running")
            os.kill(stack.workers[0].pid, signal.SIGKILL)
            with pytest.raises(openai.APIError):
                for _ in stream:
                    pass
            stack.add_worker()

            def finished() -> list[dict[str, Any]] | None:
                jobs = [http.get(f"/v1/jobs/{job_id}").json() for job_id in job_ids]
                return jobs if all(job["status"] in TERMINAL for job in jobs) else None

            jobs = wait_for(finished, "the background jobs to end", timeout=120)
        assert [job["status"] for job in jobs] == ["completed"] * 3
        assert all(job["attempts"] == 2 for job in jobs)
        assert record(redis, job_of(first.id))["status"] == "failed"
        redis.close()


def test_n_choices_from_one_prompt_each_equal_the_single_answer(stack: Stack) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": QUESTIONS[1]}], "max_tokens": 24, "temperature": 0}
    with httpx.Client(base_url=stack.base_url, timeout=60) as http:
        single = http.post("/v1/chat/completions", json=body).json()
        several = http.post("/v1/chat/completions", json={**body, "n": 3}).json()
        too_many = http.post("/v1/chat/completions", json={**body, "n": 16})
    assert_conforms("CreateChatCompletionResponse", several)
    assert [choice["index"] for choice in several["choices"]] == [0, 1, 2]
    texts = {choice["message"]["content"] for choice in several["choices"]}
    assert texts == {single["choices"][0]["message"]["content"]}
    assert several["usage"]["completion_tokens"] == 3 * single["usage"]["completion_tokens"]
    assert too_many.status_code == 400 and too_many.json()["error"]["param"] == "n"


def test_a_stream_of_two_choices_carries_each_choice_by_index(stack: Stack) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": QUESTIONS[2]}], "max_tokens": 16, "temperature": 0}
    with httpx.Client(base_url=stack.base_url, timeout=60) as http:
        single = http.post("/v1/chat/completions", json=body).json()["choices"][0]["message"]["content"]
        streamed = http.post("/v1/chat/completions", json={**body, "n": 2, "stream": True}).text
    chunks = [json.loads(line[6:]) for line in streamed.splitlines() if line.startswith("data: {")]
    texts: dict[int, str] = {0: "", 1: ""}
    finishes: dict[int, str] = {}
    for chunk in chunks:
        assert_conforms("CreateChatCompletionStreamResponse", chunk)
        for choice in chunk["choices"]:
            texts[choice["index"]] += choice["delta"].get("content") or ""
            if choice["finish_reason"]:
                finishes[choice["index"]] = choice["finish_reason"]
    assert texts == {0: single, 1: single}
    assert set(finishes) == {0, 1}


def test_logprobs_of_greedy_tokens_are_their_rows_maximum(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": QUESTIONS[3]}],
        max_tokens=12,
        temperature=0,
        logprobs=True,
        top_logprobs=3,
    )
    assert_conforms("CreateChatCompletionResponse", reply.model_dump(exclude_unset=True))
    assert reply.usage is not None and reply.choices[0].logprobs is not None
    content = reply.choices[0].logprobs.content or []
    assert len(content) == reply.usage.completion_tokens
    assert "".join(entry.token for entry in content) == reply.choices[0].message.content
    for entry in content:
        assert entry.logprob <= 0 and len(entry.top_logprobs) == 3
        assert entry.top_logprobs[0].logprob == pytest.approx(entry.logprob)  # greedy: the best is the chosen
        assert [alt.logprob for alt in entry.top_logprobs] == sorted(
            (alt.logprob for alt in entry.top_logprobs), reverse=True
        )
    legacy = client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=6, temperature=0, logprobs=2)
    assert legacy.choices[0].logprobs is not None and len(legacy.choices[0].logprobs.tokens or []) == 6
