"""The worker gives memory back: fixed malloc thresholds, and each generation's sampler freed when it ends."""

import platform

import pytest

from tests.fakes import FakeLlama, completion_job, make_engine
from worker.engine import Progress
from worker.memory import hand_back_freed_memory


class Sampler:
    """Stands in for llama-cpp-python's `LlamaSampler`, whose native chain only `close()` frees promptly."""

    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt thresholds are glibc's")
def test_thresholds_are_fixed_on_glibc() -> None:
    assert hand_back_freed_memory() is True


def test_a_finished_generation_frees_its_sampler() -> None:
    llama = FakeLlama("Hello")
    llama._sampler = sampler = Sampler()  # type: ignore[attr-defined]
    engine = make_engine(llama)
    job = completion_job("Once")
    pieces = list(engine.generate(engine.prepare(job), job.params, Progress(prompt_tokens=1)))
    assert "".join(pieces) == "Hello"
    assert sampler.closed
    assert llama._sampler is None  # type: ignore[attr-defined]


def test_a_generation_left_early_frees_its_sampler_too() -> None:
    llama = FakeLlama("Hello world, a long reply")
    llama._sampler = sampler = Sampler()  # type: ignore[attr-defined]
    engine = make_engine(llama)
    job = completion_job("Once")
    pieces = engine.generate(engine.prepare(job), job.params, Progress(prompt_tokens=1))
    assert next(pieces)
    assert not sampler.closed
    pieces.close()  # what a cancelled job does when it stops consuming
    assert sampler.closed
