"""Every Redis name llamaq uses: queues, keys and channels. Pinned by tests/unit/shared/test_names.py."""

PREFIX = "llamaq"
INTERACTIVE = "interactive"
BATCH = "batch"
LANES = (INTERACTIVE, BATCH)


def queue_name(model: str, lane: str) -> str:
    """RQ queue name of a model's lane (its RQ keys are named in shared/rqcontract.py)."""
    return f"{PREFIX}:{model}:{lane}"


def job_key(job_id: str) -> str:
    """Hash with the job's llamaq record: status, owner, timings, result."""
    return f"{PREFIX}:job:{job_id}"


def events_key(job_id: str) -> str:
    """Capped stream replaying every event of the job."""
    return f"{PREFIX}:job:{job_id}:events"


def live_channel(job_id: str) -> str:
    """Pub/sub channel carrying the job's events live."""
    return f"{PREFIX}:job:{job_id}:live"


def cancel_key(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}:cancel"


def heartbeat_key(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}:heartbeat"


def model_workers_key(model: str) -> str:
    """Sorted set: worker name -> expiry time of its registration."""
    return f"{PREFIX}:model:{model}:workers"


def model_slots_key(model: str) -> str:
    """Sorted set: `<worker name>/<slot>` -> expiry time; a model's capacity is its live members."""
    return f"{PREFIX}:model:{model}:slots"


def models_key() -> str:
    """Hash: model id -> unix time a worker first served it."""
    return f"{PREFIX}:models"


def model_info_key(model: str) -> str:
    """Hash the workers of a model publish: n_ctx and the longest token in bytes (for early size checks)."""
    return f"{PREFIX}:model:{model}:info"


def worker_key(name: str) -> str:
    """Hash describing one live worker (model, state, current job)."""
    return f"{PREFIX}:worker:{name}"


def job_durations_key(model: str) -> str:
    """Capped list of recent job durations (seconds), for Retry-After and wait estimates."""
    return f"{PREFIX}:model:{model}:durations"


def metrics_key() -> str:
    """Hash of job counters and histogram buckets that workers and EMIT add to (see shared/jobmetrics.py)."""
    return f"{PREFIX}:metrics"


def idempotency_key(owner: str, key: str) -> str:
    return f"{PREFIX}:idem:{owner}:{key}"


def owner_index_key(owner: str, kind: str) -> str:
    """Sorted set of an owner's jobs, files or batches (`kind`), scored by creation time."""
    return f"{PREFIX}:owner:{owner}:{kind}"


def batch_key(batch_id: str) -> str:
    """Hash: the batch record and its request counts. Lua builds `<batch_key>:output|errors|jobs` too."""
    return f"{PREFIX}:batch:{batch_id}"


def batch_lines_key(batch_id: str, kind: str) -> str:
    """List of a batch's output lines (`output`), error lines (`errors`) or job ids (`jobs`)."""
    return f"{batch_key(batch_id)}:{kind}"


def batches_active_key() -> str:
    """Set of batch ids not yet finished, watched for expiry and resumed after a restart."""
    return f"{PREFIX}:batches:active"


def file_key(file_id: str) -> str:
    return f"{PREFIX}:file:{file_id}"


def file_lines_key(file_id: str) -> str:
    return f"{PREFIX}:file:{file_id}:lines"


def response_key(response_id: str) -> str:
    """Hash: a stored response's request (as its object echoes it), input items, conversation and job."""
    return f"{PREFIX}:response:{response_id}"


def reaper_lock_key() -> str:
    return f"{PREFIX}:reaper:lock"


def webhooks_enabled_key() -> str:
    """Present while an API delivers webhooks (TTL: the delivery max age); events are announced only then."""
    return f"{PREFIX}:webhooks:enabled"


def webhook_outbox_key() -> str:
    """List of announced events (JSON), written with the state change, fanned out to endpoints by the API."""
    return f"{PREFIX}:webhooks:outbox"


def webhook_schedule_key() -> str:
    """Sorted set: delivery id -> when it is due (a claimed delivery's score is its lease's end)."""
    return f"{PREFIX}:webhooks:schedule"


def webhook_delivery_key(delivery_id: str) -> str:
    """Hash: one event to one endpoint (url, body, attempts, lease, last error)."""
    return f"{PREFIX}:webhooks:delivery:{delivery_id}"


def webhook_dead_key() -> str:
    """Capped list of deliveries given up on (JSON), newest first."""
    return f"{PREFIX}:webhooks:dead"


def webhook_stats_key() -> str:
    """Hash: delivery outcome (delivered, retried, dead_lettered) -> count."""
    return f"{PREFIX}:webhooks:stats"
