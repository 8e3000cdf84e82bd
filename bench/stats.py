"""Per-stream measurements and their summary: percentiles, decode rate, aggregate throughput."""

import statistics
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Stream:
    """One streamed completion as the client saw it (seconds from sending the request)."""

    ttft: float | None = None
    last: float | None = None
    end: float = 0.0
    tokens: int = 0
    finish_reason: str | None = None
    error: str | None = None
    text: str = ""

    @property
    def ok(self) -> bool:
        """A stream counts only when it produced text and ended with a finish_reason."""
        return self.error is None and self.finish_reason is not None and self.ttft is not None

    @property
    def decode_rate(self) -> float | None:
        """Tokens per second after the first one: what the decode loop delivers to the client."""
        if self.ttft is None or self.last is None or self.tokens < 2 or self.last <= self.ttft:
            return None
        return (self.tokens - 1) / (self.last - self.ttft)


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


@dataclass
class Run:
    """A scenario's streams, its wall time and the peak memory of the processes behind it."""

    name: str
    clients: int
    streams: list[Stream]
    wall: float
    rss_mb: dict[str, float] = field(default_factory=dict)
    cpu_s: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        good = [s for s in self.streams if s.ok]
        ttfts = [s.ttft * 1000 for s in good if s.ttft is not None]
        e2e = [s.end for s in good]
        rates = [r for r in (s.decode_rate for s in good) if r is not None]
        tokens = sum(s.tokens for s in good)
        serving = [self.cpu_s[name] for name in ("api", "redis") if name in self.cpu_s]
        engines = [self.cpu_s[name] for name in ("worker", "raw") if name in self.cpu_s]
        ours = sum(used for name, used in self.cpu_s.items() if name != "machine")
        return {
            "scenario": self.name,
            "clients": self.clients,
            "requests": len(self.streams),
            "failed": len(self.streams) - len(good),
            "ttft_p50_ms": percentile(ttfts, 50),
            "ttft_p95_ms": percentile(ttfts, 95),
            "decode_tok_s": median(rates),
            "e2e_p50_s": percentile(e2e, 50),
            "e2e_p95_s": percentile(e2e, 95),
            "agg_tok_s": tokens / self.wall if self.wall > 0 else None,
            "api_rss_mb": self.rss_mb.get("api"),
            "worker_rss_mb": self.rss_mb.get("worker"),
            # CPU the API and Redis spend per token relayed: taken from the workers when cores are full.
            "relay_cpu_ms_tok": 1000 * sum(serving) / tokens if serving and tokens else None,
            # Cores the model processes used, and cores taken by processes not in the benchmark.
            "engine_cores": self._cores(sum(engines)) if engines else None,
            "others_cores": self._cores(max(0.0, self.cpu_s["machine"] - ours)) if "machine" in self.cpu_s else None,
            # Throughput per core the model processes got: comparable when other tenants take cores away.
            "agg_per_core": tokens / sum(engines) if engines and sum(engines) > 0 else None,
            "cpu_s": self.cpu_s,
        }

    def _cores(self, cpu_seconds: float) -> float | None:
        return cpu_seconds / self.wall if self.wall > 0 else None
