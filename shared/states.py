"""The states of a job and of a batch, as their records in Redis, the API objects and the Lua scripts spell them."""

from enum import StrEnum


class Status(StrEnum):
    """A job's state (the `status` field of its llamaq record and of `GET /v1/jobs/{id}`)."""

    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def ended(self) -> bool:
        """No event follows: the job's one terminal event is written."""
        return self not in (Status.QUEUED, Status.IN_PROGRESS)


class BatchStatus(StrEnum):
    """A batch's state, as OpenAI's batch object names them."""

    VALIDATING = "validating"
    FAILED = "failed"
    IN_PROGRESS = "in_progress"
    FINALIZING = "finalizing"
    COMPLETED = "completed"
    EXPIRED = "expired"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"

    @property
    def ended(self) -> bool:
        """The batch changes no more."""
        return self in (BatchStatus.COMPLETED, BatchStatus.FAILED, BatchStatus.EXPIRED, BatchStatus.CANCELLED)

    @property
    def running(self) -> bool:
        """Lines are still being validated or enqueued (a restarted API resumes it)."""
        return self in (BatchStatus.VALIDATING, BatchStatus.IN_PROGRESS)
