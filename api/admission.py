"""Admission: is the model served, is its lane below its depth limit; enqueue in the same atomic step."""

import math
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from api import capacity, rqrecords
from shared import embedding_rules, modelinfo, names
from shared.errors import InvalidRequest, ModelNotFound, NoWorkers, QueueFull
from shared.payload import JobPayload, check_context
from shared.scripts import ADMIT, AdmitOutcome
from shared.settings import Settings
from shared.states import Status
from shared.tracing import Tracing


@dataclass
class Admitted:
    job_id: str
    replayed: bool = False


class Admission:
    def __init__(self, redis: Redis, settings: Settings, tracing: Tracing | None = None) -> None:
        self._redis = redis
        self._settings = settings
        self.tracing = tracing or Tracing()
        self._admit = redis.register_script(ADMIT)

    async def _model_state(self, model: str) -> tuple[int, bool, modelinfo.ModelInfo]:
        """Live workers, whether the model was ever served, and what its workers publish: one round trip."""
        async with self._redis.pipeline(transaction=False) as pipe:
            capacity.live_workers(pipe, model)
            pipe.hexists(names.models_key(), model)
            modelinfo.read(pipe, model)
            workers, known, info = await pipe.execute()
        return int(workers), bool(known), modelinfo.parse(info)

    async def size_info(self, model: str) -> modelinfo.ModelInfo:
        """What the model's workers publish: `check_fits` reads its context size and longest token."""
        return modelinfo.parse(await modelinfo.read(self._redis, model))

    async def enqueue(
        self, payload: JobPayload, owner: str, extra: dict[str, Any] | None = None, idempotency: str = ""
    ) -> Admitted:
        """Check depth and enqueue atomically; 429 with Retry-After when the lane is full.

        With tracing on, the job carries this `admission` span's context: its worker's spans are its children.
        """
        attributes = {"llamaq.job_id": payload.id, "llamaq.model": payload.model, "llamaq.lane": payload.lane}
        with self.tracing.span("admission", kind="producer", attributes=attributes) as span:
            carrier = self.tracing.carrier()
            payload.traceparent, payload.tracestate = carrier.get("traceparent"), carrier.get("tracestate")
            admitted = await self._enqueue(payload, owner, extra, idempotency)
            span.set_attribute("llamaq.replayed", admitted.replayed)
            return admitted

    async def _enqueue(
        self, payload: JobPayload, owner: str, extra: dict[str, Any] | None, idempotency: str
    ) -> Admitted:
        workers, known, info = await self._model_state(payload.model)
        _refuse_unserved(payload.model, workers, known)
        check_serves(payload, info)
        check_fits(payload, info)
        limit = info.lane_limit(payload.lane, self._settings)
        rq_fields = rqrecords.job_record(payload, self._settings)
        own = {
            "status": Status.QUEUED.value,
            "model": payload.model,
            "lane": payload.lane,
            "kind": payload.kind,
            "owner": owner,
            "created_at": payload.created,
            "attempt": 0,
            "seq": 0,
            "tokens": 0,
            **(extra or {}),
        }
        idem_key = names.idempotency_key(owner, idempotency) if idempotency else ""
        args: list[Any] = [limit, self._settings.result_ttl, payload.id, idem_key, len(rq_fields)]
        args += [item for pair in rq_fields.items() for item in pair]
        args += [item for pair in own.items() for item in pair]
        keys = [names.job_key(payload.id), *rqrecords.admit_keys(payload)]
        code, value = await self._admit(keys=keys, args=args)
        outcome = AdmitOutcome(int(code))
        if outcome is AdmitOutcome.REPLAYED:
            return Admitted(value.decode() if isinstance(value, bytes) else str(value), replayed=True)
        if outcome is AdmitOutcome.FULL:
            raise QueueFull(
                f"The queue for `{payload.model}` is full ({value} waiting); retry later.",
                retry_after=await self.retry_after(payload.model, int(value)),
                model=payload.model,
            )
        return Admitted(payload.id)

    async def retry_after(self, model: str, depth: int) -> int:
        """Seconds the jobs already waiting will likely take to drain: depth x recent mean job time / live slots."""
        async with self._redis.pipeline(transaction=False) as pipe:
            capacity.recent_durations(pipe, model)
            capacity.live_slots(pipe, model)
            recent, slots = await pipe.execute()
        return max(1, min(600, math.ceil(capacity.wait_seconds(depth, recent, slots))))


def _refuse_unserved(model: str, workers: int, known: bool) -> None:
    if workers == 0:
        if not known:
            raise ModelNotFound(f"The model `{model}` does not exist or no worker serves it.", param="model")
        raise NoWorkers(f"No worker is serving the model `{model}` right now; try again later.", model=model)


def check_serves(payload: JobPayload, info: modelinfo.ModelInfo) -> None:
    """A chat or completion request for a model that cannot do it (an embedding model) never reaches its worker."""
    needed = modelinfo.NEEDS[payload.kind]
    if info.n_ctx is None:
        return  # nothing published of the model yet: its worker checks
    if needed not in info.capabilities:
        article = "an" if info.kind[:1] in "aeiou" else "a"
        raise InvalidRequest(
            f"The model `{payload.model}` is {article} {info.kind} model: it does not serve {needed} "
            f"(it serves {', '.join(info.capabilities)}).",
            param="model",
            code="model_not_supported",
        )


def check_fits(payload: JobPayload, info: modelinfo.ModelInfo) -> None:
    """Refuse, before queueing, a prompt that cannot fit: at best one token per longest-token bytes.

    The worker makes the exact check with the real tokenizer; this one catches the clear cases early.
    """
    if info.n_ctx is None or info.max_token_bytes is None:
        return  # nothing known of the model yet: the worker checks
    n_ctx, longest = info.n_ctx, max(1, info.max_token_bytes)
    if payload.kind == embedding_rules.EMBEDDING:
        _check_embedding(payload, n_ctx, longest, info)
        return
    texts = [m.content for m in payload.messages] if payload.messages else [payload.prompt or ""]
    check_context(payload, n_ctx, -(-sum(len(text.encode()) for text in texts) // longest), exact=False)


def _check_embedding(payload: JobPayload, n_ctx: int, longest: int, info: modelinfo.ModelInfo) -> None:
    if info.dimensions is not None:
        embedding_rules.check_dimensions(payload, info.dimensions)
    if info.n_vocab is not None:
        embedding_rules.check_tokens(payload, info.n_vocab)
    inputs = payload.input or []
    lengths = [len(each) if isinstance(each, list) else -(-len(each.encode()) // longest) for each in inputs]
    embedding_rules.check_lengths(payload, n_ctx, lengths, exact=bool(inputs) and isinstance(inputs[0], list))
