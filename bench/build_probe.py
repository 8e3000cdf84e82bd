"""One build's speed, in a process of its own: `python -m bench.build_probe MODEL THREADS REPS [VARIANT]`.

Run with the build's extracted wheel first on PYTHONPATH. Prompt tokens/s: a cold pass over a fixed
256-token prompt; decode tokens/s: 128 single-token passes after it (as llama-bench's tg, the token ids do
not change the work). Prints one JSON object: the engine report and the median of each figure over REPS.
"""

import json
import statistics
import sys
import time
from pathlib import Path

PROMPT_TOKENS = 256
DECODE_TOKENS = 128
TEXT = (
    "The river runs past the old mill, under the stone bridge and through the town, where the market opens "
    "at dawn and the bakers sell bread to the fishermen who come back from the sea with their nets. "
)


def measure(model: Path, threads: int, reps: int, variant: str | None) -> dict[str, object]:
    from llama_cpp import Llama

    from worker import llamalib

    lib = llamalib.library_dir()
    engine = llamalib.report(lib, llamalib.load_cpu_backend(lib, only=variant))
    llama = Llama(
        model_path=str(model), n_ctx=1024, n_threads=threads, n_threads_batch=threads, n_batch=256, verbose=False
    )
    tokens = (llama.tokenize(TEXT.encode(), add_bos=False) * 20)[:PROMPT_TOKENS]
    llama.eval(tokens[:32])  # the first pass after load is several times slower
    prompt, decode = [], []
    for _ in range(reps):
        llama.reset()
        started = time.perf_counter()
        llama.eval(tokens)
        prompt.append(len(tokens) / (time.perf_counter() - started))
        started = time.perf_counter()
        for token in tokens[:DECODE_TOKENS]:
            llama.eval([token])
        decode.append(DECODE_TOKENS / (time.perf_counter() - started))
    llama.close()
    return {**engine, "prompt_tps": statistics.median(prompt), "decode_tps": statistics.median(decode)}


if __name__ == "__main__":
    variant = sys.argv[4] if len(sys.argv) > 4 else None
    print(json.dumps(measure(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), variant)))
