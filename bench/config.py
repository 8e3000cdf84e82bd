"""What every contestant runs: one prompt, one sampler, one token budget, one thread count."""

from dataclasses import dataclass
from typing import Any

PROMPT = "Write a long story about a dragon who learns to bake bread in a small mountain village."


@dataclass(frozen=True)
class Workload:
    """Identical request settings for raw llama.cpp, llamaq and llama-cpp-python's server."""

    prompt: str = PROMPT
    max_tokens: int = 96
    seed: int = 42
    # Greedy decoding: every contestant generates the same tokens, so token counts and work match.
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    # llama-cpp-python's server defaults to 1.1; the worker and `create_chat_completion` use 1.0.
    repeat_penalty: float = 1.0
    threads: int = 1
    n_ctx: int = 2048
    n_batch: int = 256
    warmup: int = 2
    single_requests: int = 10
    clients: int = 8
    per_client: int = 3
    admission_seconds: float = 5.0
    admission_connections: int = 64

    def messages(self) -> list[dict[str, str]]:
        return [{"role": "user", "content": self.prompt}]

    def sampler(self) -> dict[str, Any]:
        """Sampler arguments of `Llama.create_chat_completion`, matching llamaq's worker (top_k=0, min_p=0)."""
        return {
            "repeat_penalty": self.repeat_penalty,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "min_p": self.min_p,
            "seed": self.seed,
            "max_tokens": self.max_tokens,
        }

    def openai_body(self, model: str, sampler_extras: bool) -> dict[str, Any]:
        """A streaming chat request; `sampler_extras` adds top_k, min_p, repeat_penalty (llamaq refuses them)."""
        body: dict[str, Any] = {
            "model": model,
            "messages": self.messages(),
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "seed": self.seed,
        }
        if sampler_extras:
            body |= {"top_k": self.top_k, "min_p": self.min_p, "repeat_penalty": self.repeat_penalty}
        return body


SMOKE = Workload(
    max_tokens=8, warmup=1, single_requests=2, clients=2, per_client=1, admission_seconds=1.0, admission_connections=8
)
