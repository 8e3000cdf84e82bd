"""Timings and token counts of one job, added to the shared metrics hash when the job ends."""

import time

from shared.jobmetrics import JobFigures


class JobClock:
    """Wall-clock marks of one job. Queue wait and time to first token start at the API's enqueue time,
    so across nodes they are only as exact as the clocks are synchronised (NTP)."""

    def __init__(self, enqueued: float | None) -> None:
        self.enqueued = enqueued
        self.claimed = time.time()
        self.first: float | None = None
        self.last: float | None = None
        self.prompt_tokens = 0
        self.cached_tokens = 0
        self.completion_tokens = 0

    def token(self, completion_tokens: int) -> None:
        now = time.time()
        if self.first is None:
            self.first = now
        self.last, self.completion_tokens = now, completion_tokens

    def timings(self, ended: float) -> dict[str, float]:
        start = self.enqueued if self.enqueued is not None else self.claimed
        out = {"job_latency_seconds": ended - start}
        if self.enqueued is not None:
            out["queue_wait_seconds"] = max(0.0, self.claimed - self.enqueued)
        if self.first is not None:
            out["time_to_first_token_seconds"] = self.first - start
        if self.first is not None and self.last is not None and self.completion_tokens > 1 and self.last > self.first:
            # Tokens after the first over the time between first and last: decode speed, prompt excluded.
            out["decode_tokens_per_second"] = (self.completion_tokens - 1) / (self.last - self.first)
        return out

    def figures(self, model: str, lane: str) -> JobFigures:
        timings = self.timings(time.time())
        return JobFigures(model, lane, self.prompt_tokens, self.completion_tokens, timings, self.cached_tokens)

    def log_fields(self, figures: JobFigures) -> dict[str, float | int]:
        fields: dict[str, float | int] = {
            "prompt_tokens": figures.prompt_tokens,
            "cached_tokens": figures.cached_tokens,
            "completion_tokens": figures.completion_tokens,
        }
        fields.update({name: round(value, 4) for name, value in figures.timings.items()})
        return fields
