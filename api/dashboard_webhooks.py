"""The dashboard's webhook page (`/dashboard/webhooks`): deliveries by outcome, pending, and the dead letters.

Plain server-rendered HTML beside rq-dashboard's pages, behind the same guard; every value escaped."""

import html
from typing import Any

import orjson

from shared import names

COLUMNS = ("failed_at", "type", "object_id", "event_id", "url", "attempts", "last_error")
SHOWN = 200


def page(redis: Any) -> str:
    """The page from a sync Redis client: what the dispatcher counted and the newest dead letters."""
    with redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(names.webhook_stats_key())
        pipe.zcard(names.webhook_schedule_key())
        pipe.llen(names.webhook_dead_key())
        pipe.lrange(names.webhook_dead_key(), 0, SHOWN - 1)
        stats, pending, dead, letters = pipe.execute()
    counts = "".join(f"<li>{_text(k.decode())}: {int(v)}</li>" for k, v in sorted(stats.items()))
    head = "".join(f"<th>{column}</th>" for column in COLUMNS)
    rows = "".join(_row(orjson.loads(raw)) for raw in letters)
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>llamaq webhooks</title></head><body>"
        "<h1>Webhooks</h1><p><a href='./'>queues</a></p>"
        f"<ul>{counts}<li>pending: {int(pending)}</li><li>dead letters: {int(dead)}</li></ul>"
        f"<h2>Dead letters (newest {SHOWN})</h2><table border='1'><tr>{head}</tr>{rows}</table></body></html>"
    )


def _row(letter: dict[str, Any]) -> str:
    return "<tr>" + "".join(f"<td>{_text(letter.get(column, ''))}</td>" for column in COLUMNS) + "</tr>"


def _text(value: Any) -> str:
    return html.escape(str(value), quote=True)
