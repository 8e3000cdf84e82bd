"""A worker the test drives step by step, built from the real worker's pieces on fakeredis.

`run` and `drain_once` run the real job function (`worker.task.run`) with the fake engine. `start`,
`tokens`, `finish`, `fail` and `end_cancelled` are the real `EventSink`'s steps, one call each, so a test
can look at the API between them. Two shims remain: taking a job is a plain pop off its lane (RQ's
dequeue would also file it in RQ's registries, which these tests do not read), and `tokens` sends
each token the way the sink's token sender does, but synchronously, because the sink's own `token`
answers one token late by design and these tests pin each token's answer.
"""

from dataclasses import dataclass, field
from typing import Any

import fakeredis
import orjson
from rq.job import Job
from rq.serializers import JSONSerializer

from shared import events, names, objects, rqcontract
from shared.errors import Cancelled, ContextLengthExceeded
from shared.payload import JobPayload, response_id
from shared.settings import Settings
from shared.states import Status
from tests.fakes import MODEL, FakeLlama, make_engine
from tests.probes import wait_for
from worker.context import WorkerContext
from worker.sink import EventSink, Scripts
from worker.task import run

# What a stepped job reports: a three-token prompt, one completion token.
PROMPT_TOKENS = 3


@dataclass
class StepWorker:
    redis: fakeredis.FakeRedis
    settings: Settings
    name: str = "step-worker"
    # The context of the fake model `run` generates with: what the registered model announces.
    n_ctx: int = 2048
    sinks: dict[str, EventSink] = field(default_factory=dict)

    def pop(self, lane: str = names.BATCH) -> str | None:
        raw = self.redis.lpop(rqcontract.queue_key(MODEL, lane))
        return raw.decode() if raw else None

    def take(self, lane: str = names.BATCH, timeout: float = 10.0) -> str:
        """The next job of the lane, waiting for the batch runner to enqueue one."""
        return wait_for(lambda: self.pop(lane), f"a job on the {lane} lane", timeout, interval=0.01)

    def start(self, job_id: str) -> bool:
        """Claim and announce the job, as the worker does before its first token; False when refused."""
        sink = EventSink(Scripts(self.redis), self.settings, job_id)
        if not sink.claim(self.name):
            return False
        self.sinks[job_id] = sink
        sink.started(self.name, PROMPT_TOKENS)
        return True

    def tokens(self, job_id: str, pieces: list[str]) -> list[int]:
        """One token event a piece; each answer is 1 when the job's cancellation was requested, else 0."""
        sink = self.sinks[job_id]
        return [int(sink._emit_tokens([events.Token(piece)])) for piece in pieces]

    def finish(self, job_id: str, text: str = "ok") -> dict[str, Any]:
        job = self.payload(job_id)
        build = objects.chat_completion if job.kind == "chat" else objects.text_completion
        usage = objects.usage(PROMPT_TOKENS, 1)
        response = build(response_id(job.id, job.kind), job.model, job.created, [objects.Choice(text, "stop")], usage)
        self.sinks.pop(job_id).done(response)
        return response

    def fail(self, job_id: str) -> None:
        """End the job as a prompt too long for the model ends."""
        self.sinks.pop(job_id).error(ContextLengthExceeded("The prompt is too long.", param="messages"))

    def end_cancelled(self, job_id: str) -> None:
        """End the job as the worker does once it sees the job's cancellation."""
        self.sinks.pop(job_id).error(Cancelled("The job was cancelled."), Status.CANCELLED)

    def run(self, job_id: str, text: str = "ok") -> dict[str, Any]:
        """Run the job with the real job function and a model replying `text`; the response it published."""
        self._run(job_id, text)
        ((_, last),) = self.redis.xrevrange(names.events_key(job_id), count=1)
        return dict(orjson.loads(last[b"e"])["response"])

    def drain_once(self) -> None:
        """Run every job waiting on either lane with the reply "ok"; jobs cancelled meanwhile are skipped."""
        for lane in names.LANES:
            while (job_id := self.pop(lane)) is not None:
                self._run(job_id, "ok")

    def payload(self, job_id: str) -> JobPayload:
        """The job as the API enqueued it: the argument of its RQ job."""
        job = Job.fetch(job_id, connection=self.redis, serializer=JSONSerializer)
        return JobPayload.model_validate(job.args[0])

    def _run(self, job_id: str, text: str) -> None:
        engine = make_engine(FakeLlama(text, n_ctx=self.n_ctx))
        context = WorkerContext(self.settings, self.redis, engine, Scripts(self.redis), self.name)
        run(context, self.payload(job_id).model_dump())
