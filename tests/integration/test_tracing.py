"""OpenTelemetry across the queue: the API and worker processes export one trace per request to a local OTLP/HTTP
receiver, the worker's spans children of the context the job carried; with tracing off nothing is exported."""

from dataclasses import dataclass
from typing import Any

import openai
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from redis import Redis
from rq.job import Job

from shared.rqcontract import JSONSerializer
from tests.probes import wait_for
from tests.receiver import Receiver, receiving
from tests.stack import MODEL, Stack, running_stack

pytestmark = pytest.mark.integration

MARKER = "tracing-marker-7f3a"  # prompt text that must reach no span
HTTP = "POST /v1/chat/completions"
API_SPANS = {HTTP, "admission", "relay"}
WORKER_SPANS = {"queue.wait", "job", "prompt", "decode"}


@dataclass
class Exported:
    service: str
    name: str
    trace: str
    id: str
    parent: str
    start: int
    end: int
    attributes: dict[str, Any]


def exported(receiver: Receiver) -> list[Exported]:
    found = []
    for received in list(receiver.received):
        assert received.path == "/v1/traces"
        request = ExportTraceServiceRequest.FromString(received.body)
        for resource in request.resource_spans:
            resource_attributes = {a.key: a.value.string_value for a in resource.resource.attributes}
            for scope in resource.scope_spans:
                for span in scope.spans:
                    values = {a.key: _value(a.value) for a in span.attributes}
                    found.append(
                        Exported(
                            resource_attributes["service.name"],
                            span.name,
                            span.trace_id.hex(),
                            span.span_id.hex(),
                            span.parent_span_id.hex(),
                            span.start_time_unix_nano,
                            span.end_time_unix_nano,
                            values,
                        )
                    )
    return found


def _value(value: Any) -> Any:
    return getattr(value, value.WhichOneof("value"))


def trace_of(receiver: Receiver, job_id: str) -> dict[str, Exported]:
    """The spans of the trace whose admission enqueued `job_id`, by name, once all seven have arrived."""

    def complete() -> dict[str, Exported] | None:
        spans = exported(receiver)
        admission = [s for s in spans if s.name == "admission" and s.attributes.get("llamaq.job_id") == job_id]
        if not admission:
            return None
        named = {s.name: s for s in spans if s.trace == admission[0].trace}
        return named if set(named) >= API_SPANS | WORKER_SPANS else None

    return wait_for(complete, f"the spans of {job_id}", timeout=30, interval=0.1)


def job_id_of(response_id: str) -> str:
    return "job_" + response_id.removeprefix("chatcmpl-")


@pytest.fixture
def otlp(monkeypatch: pytest.MonkeyPatch) -> Any:
    with receiving() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{receiver.port}")
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
        yield receiver


def _client(stack: Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key="unused", max_retries=0, timeout=60)


def _check_tree(spans: dict[str, Exported], job_id: str, stream: bool) -> None:
    http, admission, relay = spans[HTTP], spans["admission"], spans["relay"]
    wait, job, prompt, decode = (spans[name] for name in ("queue.wait", "job", "prompt", "decode"))
    assert {spans[name].service for name in API_SPANS} == {"llamaq-api"}
    assert {spans[name].service for name in WORKER_SPANS} == {"llamaq-worker"}
    assert http.parent == ""
    assert admission.parent == relay.parent == http.id
    assert wait.parent == job.parent == admission.id  # the worker's spans hang off the context the job carried
    assert prompt.parent == decode.parent == job.id
    assert http.attributes["http.response.status_code"] == 200
    assert relay.attributes["llamaq.stream"] is stream
    assert job.attributes["llamaq.job_id"] == job_id and job.attributes["llamaq.outcome"] == "completed"
    assert job.attributes["llamaq.model"] == MODEL and job.attributes["llamaq.lane"] == "interactive"
    assert job.attributes["gen_ai.usage.input_tokens"] > 0 and job.attributes["gen_ai.usage.output_tokens"] > 0
    assert wait.start <= wait.end <= job.start <= prompt.start <= prompt.end <= decode.start <= decode.end <= job.end
    assert http.start <= admission.start <= wait.start and relay.end <= http.end


def test_one_trace_crosses_the_api_and_worker_processes(fresh_redis_url: str, logs_dir: Any, otlp: Receiver) -> None:
    messages: Any = [{"role": "user", "content": f"Say hello. {MARKER}"}]
    with running_stack(fresh_redis_url, logs_dir, tracing="otlp") as stack, _client(stack) as client:
        answer = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=8, temperature=0)
        chunks = list(client.chat.completions.create(model=MODEL, messages=messages, max_tokens=8, stream=True))
        sync_id, stream_id = job_id_of(answer.id), job_id_of(chunks[0].id)
        sync_trace, stream_trace = trace_of(otlp, sync_id), trace_of(otlp, stream_id)
        with Redis.from_url(fresh_redis_url) as redis:
            payload = Job.fetch(sync_id, connection=redis, serializer=JSONSerializer).args[0]
    _check_tree(sync_trace, sync_id, stream=False)
    _check_tree(stream_trace, stream_id, stream=True)
    assert sync_trace[HTTP].trace != stream_trace[HTTP].trace
    assert payload["traceparent"].split("-")[1] == sync_trace[HTTP].trace
    assert stream_trace["relay"].attributes["llamaq.token_events"] > 0
    assert not any(MARKER.encode() in received.body for received in otlp.received)


def test_tracing_off_exports_nothing_and_adds_no_payload_field(
    fresh_redis_url: str, logs_dir: Any, otlp: Receiver
) -> None:
    messages: Any = [{"role": "user", "content": "Say hello."}]
    with running_stack(fresh_redis_url, logs_dir) as stack, _client(stack) as client:
        answer = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=4)
        with Redis.from_url(fresh_redis_url) as redis:
            payload = Job.fetch(job_id_of(answer.id), connection=redis, serializer=JSONSerializer).args[0]
    # The stack has stopped, so both processes have flushed whatever they had.
    assert otlp.received == []
    assert "traceparent" not in payload and "tracestate" not in payload


def test_spans_still_buffered_are_exported_when_the_processes_stop(
    fresh_redis_url: str, logs_dir: Any, otlp: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "600000")  # no export on the schedule: only the flush at exit
    messages: Any = [{"role": "user", "content": "Say hello."}]
    with running_stack(fresh_redis_url, logs_dir, tracing="otlp") as stack, _client(stack) as client:
        answer = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=4)
    _check_tree(trace_of(otlp, job_id_of(answer.id)), job_id_of(answer.id), stream=False)
