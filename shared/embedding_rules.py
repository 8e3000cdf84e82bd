"""What an embedding job must satisfy, checked early by the API (from the model's info hash) and exactly by the worker.

A model's info hash says which kind of work it does (`kind`: `chat`, or `embedding` with its `dimensions`
and `n_vocab`); a hash without `kind` was written by a chat worker from before embeddings.
"""

from shared.errors import ContextLengthExceeded, InvalidRequest
from shared.payload import JobPayload

CHAT, EMBEDDING = "chat", "embedding"


def job_kind(job: JobPayload) -> str:
    """The kind of model a job needs: completions and chat both run on a chat model."""
    return EMBEDDING if job.kind == EMBEDDING else CHAT


def check_kind(job: JobPayload, served: str | None) -> None:
    """Refuse a job sent to a model of the other kind (400 naming the model)."""
    served = served or CHAT
    if served == job_kind(job):
        return
    if served == EMBEDDING:
        message = f"The model `{job.model}` is an embedding model: it serves /v1/embeddings only."
    else:
        message = f"The model `{job.model}` is not an embedding model: send /v1/embeddings to an embedding model."
    raise InvalidRequest(message, param="model", code="model_not_supported")


def check_dimensions(job: JobPayload, dimensions: int) -> None:
    """`dimensions` may only name the model's own size: these models are not trained to be shortened."""
    if job.dimensions is not None and job.dimensions != dimensions:
        raise InvalidRequest(
            f"The model `{job.model}` makes {dimensions}-dimensional embeddings and cannot shorten them; "
            f"omit 'dimensions' or send {dimensions}.",
            param="dimensions",
        )


def check_tokens(job: JobPayload, n_vocab: int) -> None:
    """Token-id inputs must be ids of the model's own vocabulary."""
    for index, each in enumerate(job.input or []):
        if isinstance(each, list):
            bad = next((token for token in each if not 0 <= token < n_vocab), None)
            if bad is not None:
                raise InvalidRequest(
                    f"Token id {bad} in input {index} is outside the vocabulary of `{job.model}` (0 to {n_vocab - 1}).",
                    param="input",
                    code="invalid_token_id",
                )


def check_lengths(job: JobPayload, n_ctx: int, lengths: list[int], exact: bool) -> None:
    """Each input must fit the model's context whole: inputs are never truncated."""
    for index, length in enumerate(lengths):
        if length > n_ctx:
            least = "" if exact else "at least "
            raise ContextLengthExceeded(
                f"This model's maximum context length is {n_ctx} tokens, however input {index} has {least}{length} "
                f"tokens. Please reduce the length of the input.",
                param="input",
            )
