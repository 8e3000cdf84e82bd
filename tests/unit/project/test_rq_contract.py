"""The RQ internals llamaq relies on exist in the RQ installed, which is within the range pyproject.toml states."""

import importlib.metadata
import re
import tomllib

import rq
from fakeredis import FakeStrictRedis
from rq.intermediate_queue import IntermediateQueue
from rq.queue import Queue
from rq.worker import SimpleWorker

from shared import rqcontract
from tests.stack import ROOT


def declared_range() -> str:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return next(dep.removeprefix("rq") for dep in dependencies if re.match(r"rq\b", dep))


def test_the_installed_rq_is_within_the_declared_range() -> None:
    from packaging.specifiers import SpecifierSet

    installed = importlib.metadata.version("rq")
    assert installed in SpecifierSet(declared_range()), f"rq {installed} outside {declared_range()}"


def test_the_internals_used_exist() -> None:
    # worker/runner.py claims a popped job through this; rq before 3.0 lacks it.
    assert callable(getattr(Queue, "_fetch_dequeued_job", None)), f"rq {rq.__version__}: no _fetch_dequeued_job"
    worker = SimpleWorker([Queue("contract", connection=FakeStrictRedis())], connection=FakeStrictRedis())
    # worker/main.py tells a stop request from a lost Redis by it.
    assert worker._shutdown_requested_date is None


def test_rq_names_are_rqs_own() -> None:
    # RQ's names for a queue named `llamaq:m:batch`; changing one strands what running workers wrote.
    queue = Queue("llamaq:m:batch", connection=FakeStrictRedis())
    assert rqcontract.queue_key("m", "batch") == queue.key == "rq:queue:llamaq:m:batch"
    assert rqcontract.job_key("job_1") == "rq:job:job_1"
    assert rqcontract.QUEUES_SET == "rq:queues"
    assert rqcontract.started_key("m", "batch") == queue.started_job_registry.key == "rq:wip:llamaq:m:batch"
    assert rqcontract.intermediate_key("m", "batch") == IntermediateQueue(queue.key, queue.connection).key
    assert rqcontract.started_job_id(b"job_1:exec-9") == "job_1"
