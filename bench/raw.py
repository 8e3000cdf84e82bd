"""The baseline: llama-cpp-python in this process, `create_chat_completion(stream=True)`, no server."""

import contextlib
import gc
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.config import Workload
from bench.stats import Stream


def one(llama: Any, workload: Workload, cold: bool) -> Stream:
    """One streamed completion; `cold` drops the cached prompt so the whole prompt is evaluated."""
    if cold:
        llama.reset()
    out = Stream()
    started = time.perf_counter()
    for chunk in llama.create_chat_completion(messages=workload.messages(), stream=True, **workload.sampler()):
        now = time.perf_counter() - started
        choice = chunk["choices"][0]
        if choice["delta"].get("content"):
            out.tokens += 1
            out.last = now
            if out.ttft is None:
                out.ttft = now
        if choice.get("finish_reason"):
            out.finish_reason = choice["finish_reason"]
    out.end = time.perf_counter() - started
    return out


@contextlib.contextmanager
def loaded(model_path: Path, workload: Workload) -> Iterator[Any]:
    """The model with the workload's context, batch and threads, warmed like llamaq's worker."""
    from llama_cpp import Llama

    llama = Llama(
        model_path=str(model_path),
        n_ctx=workload.n_ctx,
        n_threads=workload.threads,
        n_threads_batch=workload.threads,
        n_batch=workload.n_batch,
        verbose=False,
    )
    try:
        for _ in range(workload.warmup):
            one(llama, workload, cold=False)
        yield llama
    finally:
        llama.close()
        del llama
        gc.collect()
