"""The engine thread's scheduling, on the fake slot engine: admission into free slots, one failure, one step failure."""

import threading
from typing import Any

import pytest

from shared.errors import LlamaqError
from tests.fakes import FakeLlama, FakeSlots, completion_job, make_engine
from worker.engine import Progress
from worker.scheduler import SlotScheduler
from worker.slots import Sequence, SlotRequest


def generate_all(engine: SlotScheduler, count: int, **params: Any) -> list[Any]:
    """`count` jobs generated at once from job threads; each one's text, or the exception it raised."""
    results: list[Any] = [None] * count

    def one(index: int) -> None:
        job = completion_job(f"Job {index}", **params)
        try:
            results[index] = "".join(engine.generate(engine.prepare(job), job.params, Progress(prompt_tokens=1)))
        except Exception as exc:
            results[index] = exc

    threads = [threading.Thread(target=one, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    return results


def test_jobs_beyond_the_free_slots_wait_for_one_and_all_finish() -> None:
    engine = make_engine(FakeLlama("abc", delay=0.002), slots=2)
    assert generate_all(engine, 5) == ["abc"] * 5
    assert engine.slots.free_slots() == 2


class RefusingSlots(FakeSlots):
    """Refuses to start a sequence whose temperature is 0.5, as llama.cpp refuses a grammar it cannot parse."""

    def start(self, request: SlotRequest, n: int = 1) -> list[Sequence]:
        if request.temperature == 0.5:
            raise ValueError("the grammar could not be parsed")
        return super().start(request, n)


def test_a_sequence_that_cannot_start_fails_alone() -> None:
    engine = make_engine(FakeLlama("ok", delay=0.002), slots=4)
    engine.slots = RefusingSlots(engine.slots.llama, 4)  # type: ignore[attr-defined]
    refused = generate_all(engine, 1, temperature=0.5)[0]
    assert isinstance(refused, ValueError)
    assert generate_all(engine, 3) == ["ok"] * 3


def test_a_failed_step_fails_the_jobs_in_the_slots_and_the_engine_goes_on() -> None:
    llama = FakeLlama("abcdef", fail_after=2)
    engine = make_engine(llama, slots=2)
    failed = generate_all(engine, 2)
    assert all(isinstance(result, LlamaqError) and result.code == "internal_error" for result in failed)
    llama.fail_after = None
    assert generate_all(engine, 1) == ["abcdef"]


@pytest.mark.parametrize("stop", [["cd"], ["c", "zz"]])
def test_stop_strings_cut_the_text_on_the_engine_thread(stop: list[str]) -> None:
    engine = make_engine(FakeLlama("abcdef"), slots=1)
    job = completion_job("Once", stop=stop)
    progress = Progress(prompt_tokens=1)
    assert "".join(engine.generate(engine.prepare(job), job.params, progress)) == "ab"
    assert progress.finish_reason == "stop"
