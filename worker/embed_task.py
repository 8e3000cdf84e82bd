"""An embedding job as RQ's job function runs it: tokens, vectors, one `done` event with the OpenAI response."""

import base64
import logging

import numpy as np

from shared import objects
from shared.errors import LlamaqError
from shared.payload import JobPayload
from worker.context import WorkerContext
from worker.metrics import JobClock
from worker.sink import EventSink

logger = logging.getLogger(__name__)


def embed_job(ctx: WorkerContext, job: JobPayload, sink: EventSink, clock: JobClock) -> str:
    """Embed every input of `job` (batched with the other jobs the engine holds); returns the outcome."""
    try:
        embedded = ctx.engine.embed(job)
    except LlamaqError as exc:
        sink.error(exc)
        return "rejected"
    clock.prompt_tokens = embedded.tokens
    if sink.begin(ctx.name, clock.prompt_tokens):
        return "cancelled"
    extra = {"job_id": job.id, "inputs": len(embedded.vectors), "embedded_together": embedded.together}
    logger.info("embedded", extra=extra)
    sink.done(objects.embedding_list(job.model, encoded(embedded.vectors, job.encoding_format), embedded.tokens))
    return "completed"


def encoded(vectors: np.ndarray, encoding_format: str) -> list[list[float]] | list[str]:
    """Rows as float lists, or as base64 of their little-endian float32 bytes (what the openai client decodes)."""
    if encoding_format == "base64":
        return [base64.b64encode(row.astype("<f4").tobytes()).decode("ascii") for row in vectors]
    return [[float(value) for value in row] for row in vectors]
