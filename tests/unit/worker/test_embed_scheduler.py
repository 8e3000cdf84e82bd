"""The embedding engine thread: jobs waiting together are embedded in one call; errors reach their own job only."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from shared.errors import ContextLengthExceeded, InvalidRequest, LlamaqError
from shared.payload import JobPayload, new_job_id
from tests.fake_embedder import DIMENSIONS, N_VOCAB, FakeEmbedder, make_embed_engine, tokenize, vector
from tests.fakes import MODEL
from worker.embed_scheduler import EmbedScheduler


def job(*inputs: str | list[int], dimensions: int | None = None) -> JobPayload:
    return JobPayload(
        id=new_job_id(), kind="embedding", model=MODEL, lane="interactive", created=int(time.time()),
        input=list(inputs), dimensions=dimensions,
    )  # fmt: skip


def _handed_over(engine: EmbedScheduler, count: int) -> None:
    deadline = time.monotonic() + 5
    while engine._inbox._queue.qsize() < count:
        assert time.monotonic() < deadline, "the job threads never handed their jobs over"
        time.sleep(0.005)


def test_jobs_waiting_at_once_are_embedded_in_one_call() -> None:
    fake = FakeEmbedder(hold_first=True)
    engine = make_embed_engine(fake)
    texts = [["first"], ["b1", "b2"], ["c1"], ["d1", "d2", "d3"]]
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(engine.embed, job(*texts[0]))
        assert fake.holding.wait(5)  # the engine thread is busy with the first job
        later = [pool.submit(engine.embed, job(*each)) for each in texts[1:]]
        _handed_over(engine, 3)
        fake.gate.set()
        results = [first.result(5), *(each.result(5) for each in later)]
    assert [len(call) for call in fake.calls] == [1, 6]  # two decodes: the first alone, then the other three together
    for result, inputs in zip(results, texts, strict=True):
        assert result.vectors.shape == (len(inputs), DIMENSIONS)
        assert np.allclose(result.vectors, [vector(tokenize(text)) for text in inputs])  # each job its own rows
        assert result.tokens == sum(len(text) for text in inputs)
    assert [result.together for result in results] == [1, 6, 6, 6]
    assert engine.batches == [1, 6]


def test_texts_are_tokenized_and_token_ids_kept() -> None:
    fake = FakeEmbedder()
    engine = make_embed_engine(fake)
    engine.embed(job("ab"))
    engine.embed(job([5, 6], [7]))
    assert fake.calls == [[tokenize("ab")], [[5, 6], [7]]]


@pytest.mark.parametrize(
    ("payload", "error", "param"),
    [
        (job([1, N_VOCAB]), InvalidRequest, "input"),
        (job("x" * 65), ContextLengthExceeded, "input"),
        (job([3] * 65), ContextLengthExceeded, "input"),
        (job("hi", dimensions=8), InvalidRequest, "dimensions"),
    ],
)
def test_what_the_model_cannot_take_fails_that_job_alone(payload: JobPayload, error: type, param: str) -> None:
    fake = FakeEmbedder(per_input=64, hold_first=True)
    engine = make_embed_engine(fake)
    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(engine.embed, job("first"))
        assert fake.holding.wait(5)
        bad, good = pool.submit(engine.embed, payload), pool.submit(engine.embed, job("fine"))
        _handed_over(engine, 2)
        fake.gate.set()
        with pytest.raises(error) as raised:
            bad.result(5)
        assert raised.value.param == param
        assert good.result(5).vectors.shape == (1, DIMENSIONS) and first.result(5).together == 1


def test_a_failed_batch_fails_each_of_its_jobs_and_the_engine_goes_on() -> None:
    fake = FakeEmbedder(fail=True)
    engine = make_embed_engine(fake)
    with pytest.raises(LlamaqError) as raised:
        engine.embed(job([5]))
    assert raised.value.code == "internal_error"
    fake.fail = False
    assert engine.embed(job([5])).vectors.shape == (1, DIMENSIONS)


def test_the_engine_thread_ends_when_asked_with_nothing_waiting() -> None:
    engine = make_embed_engine()
    stop = threading.Event()
    stop.set()
    runner = threading.Thread(target=engine.run, args=(stop,))
    runner.start()
    runner.join(2)
    assert not runner.is_alive()


def test_model_info_announces_the_kind_and_sizes() -> None:
    info = make_embed_engine(FakeEmbedder(per_input=64)).model_info()
    assert info == {
        "kind": "embedding",
        "n_ctx": 64,
        "max_token_bytes": 1,
        "dimensions": DIMENSIONS,
        "n_vocab": N_VOCAB,
    }
