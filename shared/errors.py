"""Domain errors, each carrying the OpenAI error object it becomes."""

from typing import Any


class LlamaqError(Exception):
    status = 500
    type = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None, model: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        # A served model the refusal is about (its metrics label); never a name only the client gave.
        self.model = model
        if code is not None:
            self.code = code

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def headers(self) -> dict[str, str]:
        return {}


class InvalidRequest(LlamaqError):
    status = 400
    type = "invalid_request_error"


class ContextLengthExceeded(InvalidRequest):
    code = "context_length_exceeded"


class Unauthorized(LlamaqError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class NotFound(LlamaqError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class PayloadTooLarge(LlamaqError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class QueueFull(LlamaqError):
    status = 429
    type = "rate_limit_error"
    code = "queue_full"

    def __init__(self, message: str, *, retry_after: int, model: str = "") -> None:
        super().__init__(message, model=model)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class Unavailable(LlamaqError):
    status = 503
    type = "server_error"
    code = "service_unavailable"


class NoWorkers(Unavailable):
    code = "no_workers"


# Both official SDKs honour this header over their status-based retries (408, 409, 429, 5xx).
NO_RETRY = {"x-should-retry": "false"}


class Timeout(LlamaqError):
    """No answer in time while the job goes on: a retry would start a second job, so the client is told not to."""

    status = 504
    type = "server_error"
    code = "timeout"

    def __init__(self, message: str, *, code: str | None = None, job_id: str | None = None) -> None:
        super().__init__(message, code=code)
        self.job_id = job_id

    def headers(self) -> dict[str, str]:
        return {**NO_RETRY, "llamaq-job-id": self.job_id} if self.job_id else dict(NO_RETRY)


class JobFailed(LlamaqError):
    """A job ended in error; status and code come from its terminal event."""

    def __init__(self, message: str, *, status: int, type: str, code: str | None, param: str | None = None):
        super().__init__(message, param=param, code=code)
        self.status = status
        self.type = type

    def headers(self) -> dict[str, str]:
        # A job that ran out of generation time would only do so again.
        return dict(NO_RETRY) if self.code == "job_timeout" else {}


class Cancelled(LlamaqError):
    """A job stopped by a cancel request: its terminal error event."""

    status = 499
    type = "invalid_request_error"
    code = "cancelled"


class ClientGone(LlamaqError):
    """The caller went away; its job is cancelled. Nobody reads this response."""

    status = 499
    type = "invalid_request_error"
    code = "client_closed_request"
