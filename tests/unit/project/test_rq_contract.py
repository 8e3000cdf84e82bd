"""The RQ internals llamaq relies on exist in the RQ installed, which is within the range pyproject.toml states."""

import importlib.metadata
import re
import tomllib

import rq
from fakeredis import FakeStrictRedis
from rq.queue import Queue
from rq.worker import SimpleWorker

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
