"""Test doubles for unit tests: a deterministic `FakeLlama` and slot engine, and workers and clients on one fakeredis.

`make_engine` builds the worker's real `SlotScheduler` over `FakeSlots` and runs its engine loop on a
thread, so job preparation, slot admission, stop strings and cancellation run the worker's own code.

The worker side gets a sync client and the API side an async one, both on the same `FakeServer`, so the
real Lua scripts, RQ records, streams and pub/sub connect the two as a real Redis would.
"""

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import fakeredis
import fakeredis.aioredis

from api.admission import Admission, Admitted
from shared import names
from shared.payload import ChatMessage, JobPayload, Params, new_job_id
from shared.settings import Settings
from worker.context import WorkerContext
from worker.engine import Engine
from worker.runner import build_worker
from worker.scheduler import SlotScheduler
from worker.sink import Scripts
from worker.slots import FinishReason, Sequence, SlotRequest, TokenOut

MODEL = "fake-model"
BOS, EOS = 1, 2
# Token ids of the fake vocabulary: one token per byte, shifted past the special tokens.
OFFSET = 3


class FakeLlama:
    """Speaks one byte per token and answers `reply`; can fail after `fail_after` tokens or be slow."""

    def __init__(
        self,
        reply: str = "Hello from the fake model.",
        *,
        n_ctx: int = 512,
        eog: bool = True,
        fail_after: int | None = None,
        delay: float = 0.0,
        on_token: Callable[[int], None] | None = None,
    ) -> None:
        self.metadata = {"general.name": "fake"}
        self.reply = reply
        self._n_ctx = n_ctx
        self.eog = eog
        self.fail_after = fail_after
        self.delay = delay
        self.on_token = on_token
        self.calls: list[dict[str, Any]] = []

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        return ([BOS] if add_bos else []) + [byte + OFFSET for byte in text]

    def detokenize(self, tokens: list[int], prev_tokens: list[int] | None = None, special: bool = False) -> bytes:
        return bytes(token - OFFSET for token in tokens if token >= OFFSET)

    def generate(self, tokens: list[int], **sampling: Any) -> Iterator[int]:
        """The token stream of one sequence; `calls` records what it was started with."""
        self.calls.append({"tokens": list(tokens), **sampling})
        return self._tokens()

    def _tokens(self) -> Iterator[int]:
        """The reply, then end-of-generation forever (or the reply again and again when `eog` is off)."""
        reply = [byte + OFFSET for byte in self.reply.encode()]
        index = 0
        while True:
            if self.fail_after is not None and index >= self.fail_after:
                raise RuntimeError("fake decode failure")
            if self.delay:
                time.sleep(self.delay)
            if self.on_token is not None:
                self.on_token(index)
            if index < len(reply) or not self.eog:
                yield reply[index % len(reply)]
            else:
                yield EOS
            index += 1

    def n_ctx(self) -> int:
        return self._n_ctx


@dataclass
class Rendered:
    """What llama-cpp-python's chat formatters return, as far as the engine reads it."""

    prompt: str
    stop: str | list[str] | None
    added_special: bool = False


def chatml(messages: list[dict[str, str]]) -> Rendered:
    body = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return Rendered(body + "<|im_start|>assistant\n", stop="<|im_end|>")


class FakeGrammars:
    """Grammar objects are opaque to the engine: return markers; a schema holding `"invalid"` fails."""

    def json_object(self) -> Any:
        return ("json_object",)

    def json_schema(self, schema: str) -> Any:
        if "invalid" in schema:
            raise ValueError("unsupported schema")
        return ("json_schema", schema)


class FakeSlots:
    """`worker.slots.SlotEngine` over `FakeLlama`: each sequence its own copy of the fake's token stream."""

    def __init__(self, llama: FakeLlama, slots: int = 4) -> None:
        self.llama = llama
        self.slots = slots
        self.per_slot_ctx = llama.n_ctx()
        self._live: dict[Sequence, Iterator[int]] = {}
        self.started: list[SlotRequest] = []

    def free_slots(self) -> int:
        return self.slots - len(self._live)

    def start(self, request: SlotRequest, n: int = 1) -> list[Sequence]:
        self.started.append(request)
        sampling = {"temp": request.temperature, "top_p": request.top_p, "seed": request.seed}
        sampling |= {"grammar": request.grammar, "presence_penalty": request.presence_penalty}
        sampling |= {"frequency_penalty": request.frequency_penalty}
        sequences = [Sequence(request, i, len(self._live) + i, cached_tokens=0, _sampler=object()) for i in range(n)]
        for sequence in sequences:
            self._live[sequence] = self.llama.generate(request.tokens, **sampling)
        return sequences

    def generating(self) -> list[Sequence]:
        return list(self._live)

    def step(self) -> list[TokenOut]:
        outs = []
        for sequence, tokens in list(self._live.items()):
            token = next(tokens)
            sequence.generated += 1
            reason: FinishReason | None = None
            if token == EOS:
                reason = "stop"
            elif sequence.generated >= sequence.request.max_tokens:
                reason = "length"
            if reason is not None:
                sequence.finish_reason = reason
                self.finish(sequence)
            # A fake certainty: each token is chosen with logprob -0.5, its only alternative itself.
            logprob, top = (
                (-0.5, [(token, -0.5)][: sequence.request.top_logprobs]) if sequence.request.logprobs else (None, [])
            )
            outs.append(TokenOut(sequence, token, token == EOS, reason, logprob, top))
        return outs

    def finish(self, sequence: Sequence) -> None:
        sequence._sampler = None
        self._live.pop(sequence, None)

    def close(self) -> None:
        self._live.clear()


# Schedulers `make_engine` started; tests/conftest.py stops them after each test.
RUNNING: list[tuple[SlotScheduler, threading.Event, threading.Thread]] = []


def make_engine(llama: FakeLlama | None = None, max_token_bytes: int = 1, slots: int = 4) -> SlotScheduler:
    """The worker's scheduler over the fake model, its engine loop running on a thread."""
    llama = llama or FakeLlama()
    engine = Engine(
        llama, n_ctx=llama.n_ctx(), formatter=chatml, grammars=FakeGrammars(), max_token_bytes=max_token_bytes
    )
    scheduler = SlotScheduler(engine, FakeSlots(llama, slots), wait_seconds=30)  # type: ignore[arg-type]
    stop = threading.Event()
    thread = threading.Thread(target=scheduler.run, args=(stop,), name="fake-engine", daemon=True)
    thread.start()
    RUNNING.append((scheduler, stop, thread))
    return scheduler


def stop_engines() -> None:
    while RUNNING:
        _, stop, thread = RUNNING.pop()
        stop.set()
        thread.join(timeout=5)


def make_settings(**overrides: Any) -> Settings:
    defaults: dict[str, Any] = {"redis_url": "redis://fake", "model_name": MODEL, "heartbeat_ttl": 10}
    return Settings(**{**defaults, **overrides})


def chat_job(content: str = "Hi", *, lane: str = names.INTERACTIVE, **params: Any) -> JobPayload:
    return JobPayload(
        id=new_job_id(),
        kind="chat",
        model=MODEL,
        lane=lane,
        created=int(time.time()),
        messages=[ChatMessage(role="user", content=content)],
        params=Params(**params),
    )


def completion_job(prompt: str = "Once", **params: Any) -> JobPayload:
    return JobPayload(
        id=new_job_id(), kind="completion", model=MODEL, lane=names.INTERACTIVE, created=int(time.time()),
        prompt=prompt, params=Params(**params),
    )  # fmt: skip


def sync_redis(server: fakeredis.FakeServer) -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(server=server)


def async_redis(server: fakeredis.FakeServer) -> fakeredis.aioredis.FakeRedis:
    """Build inside the event loop that uses it."""
    return fakeredis.aioredis.FakeRedis(server=server)


def make_context(
    redis: fakeredis.FakeRedis, engine: SlotScheduler | None = None, settings: Settings | None = None
) -> WorkerContext:
    return WorkerContext(settings or make_settings(), redis, engine or make_engine(), Scripts(redis), "fake-worker")


def register_worker(
    redis: fakeredis.FakeRedis, model: str = MODEL, *, workers: int = 1, context: tuple[int, int] | None = None
) -> None:
    """What live workers' heartbeats write (`w0`, `w1`, ..., one slot each), so admission sees the model as served.

    `context` is (n_ctx, max_token_bytes), the model facts the API's early prompt-size check reads.
    """
    redis.hsetnx(names.models_key(), model, int(time.time()))
    if workers:
        redis.zadd(names.model_workers_key(model), {f"w{i}": time.time() + 3600 for i in range(workers)})
        redis.zadd(names.model_slots_key(model), {f"w{i}/0": time.time() + 3600 for i in range(workers)})
    if context is not None:
        redis.hset(names.model_info_key(model), mapping={"n_ctx": context[0], "max_token_bytes": context[1]})


def enqueue(server: fakeredis.FakeServer, payload: JobPayload, settings: Settings | None = None) -> Admitted:
    """Enqueue through the API's real admission, from sync test code."""

    async def admit() -> Admitted:
        client = async_redis(server)
        try:
            return await Admission(client, settings or make_settings()).enqueue(payload, "public")
        finally:
            await client.aclose()

    return asyncio.run(admit())


def run_burst(context: WorkerContext) -> None:
    """Run every queued job of the model in-process with the real RQ worker, then return."""
    build_worker(context.settings, context.redis, context, context.name).work(burst=True)


class ThreadWorker:
    """The real RQ worker on a thread, for tests that drive the API in the main thread's event loop.

    Off the main thread `ModelWorker` installs no signal handlers and times jobs out with a timer, not SIGALRM.
    """

    def __init__(self, context: WorkerContext, poll: float = 0.01) -> None:
        self._context = context
        self._poll = poll
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="fake-worker", daemon=True)

    def __enter__(self) -> "ThreadWorker":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            worker = build_worker(self._context.settings, self._context.redis, self._context, self._context.name)
            worker.work(burst=True)
            self._stop.wait(self._poll)
