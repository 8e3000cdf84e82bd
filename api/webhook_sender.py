"""One delivery attempt: the endpoint pinned to a checked address, the body signed now, no redirect followed.

Any 2xx acknowledges; anything else, a 3xx included, is a failure to retry, as are connection errors
and timeouts. The receiver's answer is never read beyond its status.
"""

import asyncio
import time

import httpx

from api.webhook_guard import pin
from api.webhook_signing import signed_headers


class Sender:
    """Holds the one HTTP client (no redirects, no proxies or netrc from the environment) and the signing key."""

    def __init__(self, key: bytes, allow_private: bool, seconds: float) -> None:
        self.key = key
        self.allow_private = allow_private
        self.seconds = seconds
        # No kept-alive connections: a pool is keyed by address, and two endpoints on one address must not share
        # a TLS connection made (and its certificate checked) for the other one's name.
        self.client = httpx.AsyncClient(
            follow_redirects=False,
            timeout=httpx.Timeout(seconds),
            trust_env=False,
            limits=httpx.Limits(max_keepalive_connections=0),
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    async def attempt(self, url: str, event_id: str, body: bytes) -> str | None:
        """None when the endpoint acknowledged; else why not. Raises `Refused` for a forbidden address."""
        try:
            async with asyncio.timeout(self.seconds):
                status = await self._post(url, event_id, body)
        except TimeoutError:
            return f"no answer within {self.seconds:g} s"
        except (httpx.HTTPError, OSError) as exc:
            return f"{type(exc).__name__}: could not reach the endpoint"
        if 200 <= status < 300:
            return None
        if 300 <= status < 400:
            return f"HTTP {status} (redirects are not followed)"
        return f"HTTP {status}"

    async def _post(self, url: str, event_id: str, body: bytes) -> int:
        target = await pin(url, self.allow_private)
        headers = {**signed_headers(self.key, event_id, int(time.time()), body), "host": target.host}
        extensions = {"sni_hostname": target.sni} if url.startswith("https") and target.sni else {}
        request = self.client.build_request("POST", target.url, content=body, headers=headers, extensions=extensions)
        response = await self.client.send(request, stream=True)
        await response.aclose()
        return response.status_code
