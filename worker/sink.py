"""Publishes one job's events to Redis: the live channel and the replay stream, in one round trip."""

import time
from typing import Any

from redis import Redis

from shared import events, names
from shared.emission import emission
from shared.errors import LlamaqError
from shared.jobs import Status
from shared.scripts import CLAIM, EMIT
from shared.settings import Settings


class Refused(Exception):
    """Redis refused the event: the job finished elsewhere or this attempt is stale."""


class Scripts:
    def __init__(self, redis: Redis) -> None:
        self.emit = redis.register_script(EMIT)
        self.claim = redis.register_script(CLAIM)


class EventSink:
    def __init__(self, scripts: Scripts, settings: Settings, job_id: str) -> None:
        self._scripts = scripts
        self._settings = settings
        self._job_id = job_id
        self.attempt = 0
        self.finished = False

    def claim(self, worker: str) -> bool:
        keys = [names.job_key(self._job_id), names.heartbeat_key(self._job_id)]
        attempt = int(self._scripts.claim(keys=keys, args=[worker, time.time(), self._settings.heartbeat_ttl]))
        self.attempt = max(attempt, 0)
        return attempt > 0

    def _emit(self, event: bytes, kind: str, terminal: str = "") -> bool:
        """Append an event; True when the job's cancellation was requested."""
        keys, args = emission(self._settings, self._job_id, event, kind, attempt=self.attempt, terminal=terminal)
        result = int(self._scripts.emit(keys=keys, args=args))
        if result < 0:
            raise Refused(self._job_id)
        return result == 1

    def started(self, worker: str, prompt_tokens: int) -> bool:
        return self._emit(events.started(worker, prompt_tokens, self.attempt), events.STARTED)

    def token(self, text: str) -> bool:
        return self._emit(events.token(text), events.TOKEN)

    def done(self, response: dict[str, Any]) -> None:
        self.finished = True
        self._emit(events.done(response), events.DONE, Status.COMPLETED)

    def error(self, exc: LlamaqError, status: Status = Status.FAILED, partial: dict[str, Any] | None = None) -> None:
        self.finished = True
        event = events.error(exc.status, exc.type, exc.code, exc.message, exc.param, partial)
        self._emit(event, events.ERROR, status)
