"""What a model's workers publish about it (`names.model_info_key`), and what the API reads back.

The workers of a model write the hash on every heartbeat: its context size and longest token (for the
API's early size check), its `kind` (`chat`, or `embedding` for a worker with `LLAMAQ_EMBEDDING=true`;
a hash without one is a chat model), and the queue limits set on the worker itself. A limit is published
only when the worker's environment sets it (`LLAMAQ_MAX_QUEUE_DEPTH`, `LLAMAQ_MAX_BATCH_QUEUE_DEPTH`);
otherwise the worker removes it and the API's own setting applies. Every worker of one model should
therefore be given the same limits: the hash holds one value a model, the last heartbeat's.
"""

from dataclasses import dataclass
from typing import Any

from shared import names
from shared.settings import Settings

CHAT, EMBEDDING = "chat", "embedding"
# What clients may ask a model of each kind for, as /v1/models lists it.
CAPABILITIES = {CHAT: ("chat", "completions"), EMBEDDING: ("embeddings",)}
# The capability a job of each payload kind needs of its model.
NEEDS = {"chat": "chat", "completion": "completions", "embedding": "embeddings"}
# Settings a worker publishes as its model's limits when its own environment sets them.
LIMITS = ("max_queue_depth", "max_batch_queue_depth")
FIELDS = ("kind", "n_ctx", "max_token_bytes", *LIMITS, "dimensions", "n_vocab")


@dataclass(frozen=True)
class ModelInfo:
    kind: str = CHAT
    n_ctx: int | None = None
    max_token_bytes: int | None = None
    max_queue_depth: int | None = None
    max_batch_queue_depth: int | None = None
    dimensions: int | None = None  # an embedding model's vector size
    n_vocab: int | None = None  # an embedding model's vocabulary: token-id inputs must be below it

    @property
    def capabilities(self) -> list[str]:
        return list(CAPABILITIES.get(self.kind, CAPABILITIES[CHAT]))

    def lane_limit(self, lane: str, settings: Settings) -> int:
        """The model's own limit for `lane` if its workers publish one, else the API's setting."""
        if lane == names.INTERACTIVE:
            return self.max_queue_depth or settings.max_queue_depth
        return self.max_batch_queue_depth or settings.max_batch_queue_depth


def _number(raw: Any) -> int | None:
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def parse(values: list[Any]) -> ModelInfo:
    """A `ModelInfo` from `HMGET model_info_key(model) *FIELDS`; missing or garbled fields are left unset."""
    raw = dict(zip(FIELDS, values, strict=True))
    kind = raw["kind"].decode() if isinstance(raw["kind"], bytes) else raw["kind"]
    numbers = {name: _number(raw[name]) for name in FIELDS[1:]}
    return ModelInfo(kind=kind or CHAT, **numbers)


def read(client: Any, model: str) -> Any:
    """Queue the HMGET `parse` reads on a pipeline, or return it awaitable/plain on a client."""
    return client.hmget(names.model_info_key(model), list(FIELDS))


def published_limits(settings: Settings) -> tuple[dict[str, int], list[str]]:
    """The limits this worker publishes for its model (set in its environment) and those it withdraws."""
    chosen = {name: int(getattr(settings, name)) for name in LIMITS if name in settings.model_fields_set}
    return chosen, [name for name in LIMITS if name not in chosen]
