"""A deterministic stand-in for `worker.embedder.Embedder` and the real `EmbedScheduler` over it, for unit tests.

Tokens are bytes shifted past the special ids (as `FakeLlama` speaks); a text's vector counts its tokens
by id modulo the dimensions, so texts sharing words point the same way. Every `embed` call is one
"decode", recorded with the inputs it held; a test can hold the first call until it releases `gate`.
"""

import threading
from collections.abc import Sequence

import numpy as np

from tests.fakes import OFFSET, RUNNING
from worker.embed_scheduler import EmbedScheduler

DIMENSIONS = 16
N_VOCAB = 256 + OFFSET


class FakeEmbedder:
    def __init__(self, per_input: int = 64, hold_first: bool = False, fail: bool = False) -> None:
        self.per_input = per_input
        self.dimensions = DIMENSIONS
        self.n_vocab = N_VOCAB
        self.calls: list[list[list[int]]] = []
        self.gate = threading.Event()
        self.holding = threading.Event()  # set while the first call waits for `gate`
        if not hold_first:
            self.gate.set()
        self.fail = fail

    @property
    def decodes(self) -> int:
        return len(self.calls)

    def embed(self, inputs: Sequence[Sequence[int]]) -> np.ndarray:
        self.calls.append([list(each) for each in inputs])
        if not self.gate.is_set():
            self.holding.set()
            assert self.gate.wait(10), "the test never released the fake embedder"
        if self.fail:
            raise RuntimeError("fake embedding failure")
        return np.array([vector(each) for each in inputs], dtype=np.float32)


def tokenize(text: str) -> list[int]:
    return [byte + OFFSET for byte in text.encode()]


def vector(tokens: Sequence[int]) -> np.ndarray:
    counts = np.bincount(np.array(tokens) % DIMENSIONS, minlength=DIMENSIONS).astype(np.float32)
    return counts / np.linalg.norm(counts)


def make_embed_engine(embedder: FakeEmbedder | None = None) -> EmbedScheduler:
    """The worker's embedding scheduler over the fake, its engine loop running on a thread (stopped after the test)."""
    scheduler = EmbedScheduler(embedder or FakeEmbedder(), tokenize, max_token_bytes=1, wait_seconds=30)  # type: ignore[arg-type]
    stop = threading.Event()
    thread = threading.Thread(target=scheduler.run, args=(stop,), name="fake-embed-engine", daemon=True)
    thread.start()
    RUNNING.append((scheduler, stop, thread))  # type: ignore[arg-type]
    return scheduler
