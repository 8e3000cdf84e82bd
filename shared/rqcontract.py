"""The contract with RQ: which of RQ's own records llamaq reads and writes, by what names, in what states.

Tested with RQ 3.0 (pyproject.toml pins `rq>=3.0,<3.1`; tests/unit/project/test_rq_contract.py checks the
installed RQ and the internals below). RQ keeps, for each queue, a list of waiting job ids, a list of
jobs popped and not yet started (the intermediate list), a started registry, and one hash a job.
Only two modules touch them: `api/rqrecords.py` on the API side and `worker/runner.py` on the worker
side. Lua scripts that change RQ's records take their fragments from here, so the names and the
status values they write are RQ's own.

The internals relied on, all in RQ 3.0:
- `Queue._fetch_dequeued_job` (worker/runner.py claims a popped job through it);
- `Worker._shutdown_requested_date` (tells a stop request from a lost Redis);
- `IntermediateQueue.get_intermediate_queue_key` (the intermediate list's name);
- started-registry members are `<job id>:<execution id>`.
"""

from rq.intermediate_queue import IntermediateQueue
from rq.job import JobStatus
from rq.serializers import JSONSerializer

from shared import names

__all__ = ["JSONSerializer", "JobStatus"]

QUEUES_SET = "rq:queues"


def queue_key(model: str, lane: str) -> str:
    """RQ's list of a lane's waiting job ids."""
    return f"rq:queue:{names.queue_name(model, lane)}"


def job_key(job_id: str) -> str:
    """RQ's hash of one job (its function, arguments, status, timestamps)."""
    return f"rq:job:{job_id}"


def started_key(model: str, lane: str) -> str:
    """RQ's started-job registry of a lane (members `<job id>:<execution id>`)."""
    return f"rq:wip:{names.queue_name(model, lane)}"


def intermediate_key(model: str, lane: str) -> str:
    """RQ's list of jobs popped from a lane and not yet started."""
    return IntermediateQueue.get_intermediate_queue_key(queue_key(model, lane))


def started_job_id(member: bytes | str) -> str:
    """The job id of a started-registry member."""
    text = member.decode() if isinstance(member, bytes) else member
    return text.rsplit(":", 1)[0]


def lua_set_status(job_hash: str, status: JobStatus) -> str:
    """Lua that sets RQ's status of the job whose hash is `job_hash` (a KEYS/ARGV expression)."""
    return f"redis.call('HSET', {job_hash}, 'status', '{status.value}')"


def lua_forget_started(registry: str, job_id: str) -> str:
    """Lua that removes every execution of `job_id` from the started registry `registry`."""
    return f"""local prefix = {job_id} .. ':'
for _, member in ipairs(redis.call('ZRANGE', {registry}, 0, -1)) do
  if string.sub(member, 1, string.len(prefix)) == prefix then redis.call('ZREM', {registry}, member) end
end"""
