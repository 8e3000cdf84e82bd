"""The engine thread of an embedding worker: every job waiting at one moment embedded in one batch.

Job threads (one RQ loop a slot, worker/runner.py) hand over their job in one step (`embed`). The engine
thread collects every job waiting when it looks, tokenizes and checks each, embeds all their inputs
together (`Embedder` packs them into as few decodes as fit) and hands each job its rows.
"""

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from shared import embedding_rules
from shared.errors import InvalidRequest, LlamaqError, Unavailable
from shared.payload import JobPayload
from worker.embedder import Embedder
from worker.inbox import EngineInbox

logger = logging.getLogger(__name__)

Tokenize = Callable[[str], list[int]]


@dataclass(frozen=True)
class Embedded:
    """A job's vectors (one unit-length row per input), its token count, and the inputs embedded in its batch."""

    vectors: np.ndarray
    tokens: int
    together: int


@dataclass(eq=False)
class _Request:
    job: JobPayload
    done: "Future[Embedded]" = field(default_factory=Future)
    inputs: list[list[int]] = field(default_factory=list)


class EmbedScheduler:
    """What job threads call (`prepare`, `embed`) and what the engine thread runs (`run`)."""

    kind = embedding_rules.EMBEDDING

    def __init__(self, embedder: Embedder, tokenize: Tokenize, max_token_bytes: int, wait_seconds: float) -> None:
        self.embedder = embedder
        self.tokenize = tokenize
        self.max_token_bytes = max_token_bytes
        self.n_ctx = embedder.per_input
        self._inbox = EngineInbox(wait_seconds)
        self._pending: list[_Request] = []
        self.batches: list[int] = []  # inputs embedded together, the latest last (read by tests and the benchmark)

    def model_info(self) -> dict[str, str | int]:
        """What the worker's heartbeat writes to the model's info hash."""
        return {
            "kind": self.kind,
            "n_ctx": self.n_ctx,
            "max_token_bytes": self.max_token_bytes,
            "dimensions": self.embedder.dimensions,
            "n_vocab": self.embedder.n_vocab,
        }

    # -- job threads -----------------------------------------------------------------------------------------

    def embed(self, job: JobPayload) -> Embedded:
        """The job's vectors, embedded on the engine thread with the other jobs waiting; its input errors raised."""
        request = _Request(job)
        self._inbox.put(lambda: self._pending.append(request))
        try:
            return request.done.result(timeout=self._inbox.wait)
        except TimeoutError:
            raise Unavailable("The worker's engine stopped answering.") from None

    def close(self) -> None:
        """Nothing to free beyond the model, which lives as long as the process."""

    # -- the engine thread -----------------------------------------------------------------------------------

    def _prepare(self, job: JobPayload) -> list[list[int]]:
        if job.kind != self.kind or not job.input:
            raise InvalidRequest("An embedding job needs inputs.", param="input")
        embedding_rules.check_dimensions(job, self.embedder.dimensions)
        embedding_rules.check_tokens(job, self.embedder.n_vocab)
        inputs = [list(each) if isinstance(each, list) else self.tokenize(each) for each in job.input]
        embedding_rules.check_lengths(job, self.n_ctx, [len(each) for each in inputs], exact=True)
        return inputs

    def run(self, stopping: threading.Event) -> None:
        """Serve until `stopping` is set and no request is left waiting."""
        while not (stopping.is_set() and not self._pending):
            self._inbox.drain(block=not self._pending)
            if self._pending:
                batch, self._pending = self._pending, []
                self._embed_together(batch)

    def _prepared(self, waiting: list[_Request]) -> list[_Request]:
        """The requests whose inputs the model can take, tokenized; the others fail with their error."""
        batch = []
        for request in waiting:
            try:
                request.inputs = self._prepare(request.job)
            except LlamaqError as exc:
                request.done.set_exception(exc)
                continue
            batch.append(request)
        return batch

    def _embed_together(self, waiting: list[_Request]) -> None:
        batch = self._prepared(waiting)
        everything = [each for request in batch for each in request.inputs]
        if not everything:
            return
        try:
            vectors = self.embedder.embed(everything)
        except Exception as exc:
            logger.exception("llama.cpp embedding failed; failing the jobs in the batch")
            error = LlamaqError("The worker failed while embedding.", code="internal_error")
            error.__cause__ = exc
            for request in batch:
                request.done.set_exception(error)
            return
        self.batches.append(len(everything))
        del self.batches[:-100]
        start = 0
        for request in batch:
            rows = vectors[start : start + len(request.inputs)]
            request.done.set_result(Embedded(rows, sum(map(len, request.inputs)), len(everything)))
            start += len(request.inputs)
