"""The worker gives memory back: fixed malloc thresholds, and each generation's slot and sampler freed at its end."""

import platform

import pytest

from tests.fakes import FakeLlama, completion_job, make_engine
from tests.probes import wait_for
from worker.engine import Progress
from worker.memory import hand_back_freed_memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt thresholds are glibc's")
def test_thresholds_are_fixed_on_glibc() -> None:
    assert hand_back_freed_memory() is True


def test_a_finished_generation_frees_its_slot() -> None:
    engine = make_engine(FakeLlama("Hello"), slots=2)
    job = completion_job("Once")
    pieces = list(engine.generate(engine.prepare(job), job.params, Progress(prompt_tokens=1)))
    assert "".join(pieces) == "Hello"
    assert engine.slots.free_slots() == 2 and not engine.slots.generating()


def test_a_generation_left_early_frees_its_slot_too() -> None:
    engine = make_engine(FakeLlama("Hello world", eog=False, delay=0.01), slots=2)
    job = completion_job("Once")
    pieces = engine.generate(engine.prepare(job), job.params, Progress(prompt_tokens=1))
    assert next(pieces)
    assert engine.slots.free_slots() == 1
    pieces.close()  # what a cancelled job does when it stops consuming
    wait_for(lambda: engine.slots.free_slots() == 2, "the engine thread to free the slot", timeout=5)
