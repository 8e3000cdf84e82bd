"""One loaded model: chat templating, context check, and token-by-token generation."""

import codecs
import json
import random
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from shared.errors import InvalidRequest
from shared.payload import JobPayload, Params, check_context

# Used when a GGUF carries no chat template of its own.
CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


class LlamaLike(Protocol):
    metadata: dict[str, str]

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> list[int]: ...
    def detokenize(self, tokens: list[int], prev_tokens: list[int] | None = None, special: bool = False) -> bytes: ...
    @property
    def generate(self) -> Callable[..., Generator[int, Any, None]]: ...
    def set_seed(self, seed: int) -> None: ...
    def reset(self) -> None: ...
    def n_ctx(self) -> int: ...
    def token_eos(self) -> int: ...
    def token_bos(self) -> int: ...


@dataclass
class Prepared:
    tokens: list[int]
    stops: list[str]
    max_tokens: int
    grammar: Any = None


@dataclass
class Progress:
    """Progress of one generation, filled in as its pieces are consumed."""

    prompt_tokens: int
    completion_tokens: int = 0
    finish_reason: str = "length"
    text: list[str] = field(default_factory=list)


class Engine:
    def __init__(
        self, llama: LlamaLike, *, is_eog: Any, formatter: Any, grammars: Any, max_token_bytes: int = 0
    ) -> None:
        self.llama = llama
        # Longest token of the vocabulary in bytes: the API's lower bound on a prompt's token count.
        self.max_token_bytes = max_token_bytes
        self._is_eog = is_eog
        self._formatter = formatter
        self._grammars = grammars

    def prepare(self, job: JobPayload) -> Prepared:
        """Render and tokenize the prompt; refuse what cannot fit in the context."""
        stops = list(job.params.stop)
        if job.kind == "chat":
            assert job.messages is not None
            rendered = self._formatter(messages=[m.model_dump() for m in job.messages])
            tokens = self.llama.tokenize(rendered.prompt.encode(), add_bos=not rendered.added_special, special=True)
            extra = rendered.stop or []
            stops += [extra] if isinstance(extra, str) else list(extra)
        else:
            tokens = self.llama.tokenize((job.prompt or "").encode(), add_bos=True, special=False)
        n_ctx = self.llama.n_ctx()
        check_context(job, n_ctx, len(tokens), exact=True)
        limit = job.params.max_tokens
        max_tokens = limit if limit is not None else n_ctx - len(tokens)
        if limit is None and job.params.default_max_tokens is not None:
            max_tokens = min(max_tokens, job.params.default_max_tokens)
        return Prepared(tokens, [s for s in stops if s], max_tokens, self._grammar(job.params))

    def _grammar(self, params: Params) -> Any:
        fmt = params.response_format
        if not fmt or fmt.get("type") == "text":
            return None
        try:
            if fmt["type"] == "json_object":
                return self._grammars.json_object()
            return self._grammars.json_schema(json.dumps(fmt["json_schema"].get("schema") or {}))
        except Exception as exc:
            raise InvalidRequest(
                "response_format.json_schema could not be turned into a grammar", param="response_format"
            ) from exc

    def generate(self, prepared: Prepared, params: Params, progress: Progress) -> Iterator[str]:
        """Yield text pieces; `progress` holds the token count and finish reason."""
        seed = params.seed if params.seed is not None else random.getrandbits(32)
        self.llama.set_seed(seed & 0xFFFFFFFF)
        if prepared.max_tokens == 0:
            return
        if params.seed is not None:
            # Reusing the previous job's cached prefix evaluates the prompt in other batch shapes, which
            # shifts the logits slightly: a seeded request pays a full prompt pass to be reproducible.
            self.llama.reset()
        tokens = self.llama.generate(
            prepared.tokens,
            temp=params.temperature,
            top_p=params.top_p,
            top_k=0,
            min_p=0.0,
            frequency_penalty=params.frequency_penalty,
            presence_penalty=params.presence_penalty,
            grammar=prepared.grammar,
        )
        try:
            yield from self._pieces(tokens, prepared, progress)
        finally:
            tokens.close()
            self._release_sampler()

    def _pieces(self, tokens: Iterable[int], prepared: Prepared, progress: Progress) -> Iterator[str]:
        stops = StopMatcher(prepared.stops)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        for token in tokens:
            if self._is_eog(token):
                progress.finish_reason = "stop"
                break
            progress.completion_tokens += 1
            piece, hit = stops.feed(decoder.decode(self.llama.detokenize([token])))
            if piece:
                progress.text.append(piece)
                yield piece
            if hit:
                progress.finish_reason = "stop"
                return
            if progress.completion_tokens >= prepared.max_tokens:
                break
        tail = stops.flush(decoder.decode(b"", final=True))
        if tail:
            progress.text.append(tail)
            yield tail

    def _release_sampler(self) -> None:
        """Free the sampler chain llama-cpp-python built for this generation, now rather than at some later GC.

        Its `LlamaSampler` frees the native chain from a closure that refers back to it: a reference cycle
        that only the cyclic collector breaks, seldom, so a worker held up to ~20 MB of dead samplers.
        """
        llama: Any = self.llama
        sampler = getattr(llama, "_sampler", None)
        if sampler is not None and hasattr(sampler, "close"):
            sampler.close()
            # llama-cpp-python builds a fresh one for the next generate(), and a None one for a lone sample().
            llama._sampler = None


class StopMatcher:
    """Holds back text that may be the start of a stop sequence; cuts at the first full match."""

    def __init__(self, stops: list[str]) -> None:
        self._stops = stops
        self._pending = ""

    def feed(self, text: str) -> tuple[str, bool]:
        if not self._stops:
            return text, False
        pending = self._pending + text
        cut = min((i for i in (pending.find(s) for s in self._stops) if i >= 0), default=-1)
        if cut >= 0:
            self._pending = ""
            return pending[:cut], True
        hold = max((k for s in self._stops for k in range(1, len(s)) if pending.endswith(s[:k])), default=0)
        self._pending = pending[len(pending) - hold :] if hold else ""
        return pending[: len(pending) - hold], False

    def flush(self, text: str) -> str:
        rest, _ = self.feed(text)
        rest, self._pending = rest + self._pending, ""
        return rest
