"""Request dependencies as `Annotated` aliases: settings, clients built by the lifespan, the caller."""

from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis

from api.admission import Admission
from api.relay import Relay
from shared.errors import Unauthorized
from shared.keys import key_matches, owner_of_key
from shared.settings import Settings


# Async although they do no I/O: FastAPI runs plain `def` dependencies in its thread pool, a thread
# hand-off per dependency per request (five per generation request).
async def _settings(request: Request) -> Settings:
    return request.app.state.settings


async def _redis(request: Request) -> Redis:
    return request.app.state.redis


async def _relay(request: Request) -> Relay:
    return request.app.state.relay


async def _admission(request: Request) -> Admission:
    return request.app.state.admission


def owner_of(request: Request, settings: Settings) -> str:
    """Who is calling: a digest of their key, compared in constant time; `public` without keys."""
    if not settings.api_keys:
        return "public"
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.")
    if not key_matches(token, [key.get_secret_value() for key in settings.api_keys]):
        raise Unauthorized("Incorrect API key provided.")
    return owner_of_key(token)


async def _owner(request: Request, settings: Annotated[Settings, Depends(_settings)]) -> str:
    return owner_of(request, settings)


SettingsDep = Annotated[Settings, Depends(_settings)]
RedisDep = Annotated[Redis, Depends(_redis)]
RelayDep = Annotated[Relay, Depends(_relay)]
AdmissionDep = Annotated[Admission, Depends(_admission)]
OwnerDep = Annotated[str, Depends(_owner)]
