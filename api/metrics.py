"""This API process's HTTP figures (`HttpMetrics`); `GET /metrics` (api/routes/metrics.py) adds the fleet's.

HTTP counters belong to the process (scrape every API instance); queue, worker and job figures come
from Redis and are the same whichever instance is scraped (aggregate them with `max`, not `sum`).
"""

from prometheus_client import Counter, Histogram
from prometheus_client.core import Metric

REJECTED = (429, 503)


class HttpMetrics:
    """Per-process request figures; built by `create_app`, never registered in a global registry."""

    def __init__(self) -> None:
        self.requests = Counter(
            "llamaq_http_requests", "HTTP requests by route and status.", ["route", "method", "status"], registry=None
        )
        self.rejected = Counter(
            "llamaq_rejected_requests", "Requests refused as full (429) or unavailable (503); model: the served model "
            "refused (empty when none is known, e.g. Redis down).", ["route", "status", "model"], registry=None,
        )  # fmt: skip
        self.duration = Histogram(
            "llamaq_http_request_duration_seconds",
            "Seconds from request to the end of the response (streams included).",
            ["route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=None,
        )

    def observe(self, route: str, method: str, status: int, seconds: float, model: str = "") -> None:
        self.requests.labels(route, method, str(status)).inc()
        if status in REJECTED:
            self.rejected.labels(route, str(status), model).inc()
        self.duration.labels(route).observe(seconds)

    def families(self) -> list[Metric]:
        return [family for metric in (self.requests, self.rejected, self.duration) for family in metric.collect()]
