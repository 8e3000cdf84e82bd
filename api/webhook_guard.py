"""Where a webhook may go: the endpoint's host resolved now, every address checked, one of them pinned.

Loopback, private, link-local (the cloud metadata address among them), unspecified, multicast and
reserved addresses are refused unless LLAMAQ_WEBHOOK_ALLOW_PRIVATE=true; plain http only to such
addresses (and only then). The request then connects to the checked address itself, so a DNS answer
that changes between check and connect cannot send it elsewhere.
"""

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Refused(Exception):
    """The endpoint resolves to an address webhooks may not reach (a setting to change, not a retry)."""


@dataclass(frozen=True)
class Pinned:
    url: str  # the endpoint's URL with the checked address in place of the host name
    host: str  # the Host header
    sni: str | None  # the TLS server name (https)


def is_public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return is_public(address.ipv4_mapped)
    return not (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_unspecified
        or address.is_multicast
        or address.is_reserved
        or not address.is_global
    )


def check_address(address: IPAddress, scheme: str, allow_private: bool) -> None:
    public = is_public(address)
    if not public and not allow_private:
        raise Refused(f"{address} is not a public address (LLAMAQ_WEBHOOK_ALLOW_PRIVATE is off)")
    if public and scheme != "https":
        raise Refused(f"plain http to the public address {address}; use https")


async def resolve(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


async def pin(url: str, allow_private: bool) -> Pinned:
    """The URL to connect to; Refused when any address of the host is not allowed, OSError when unresolvable."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = await resolve(host, port)
    if not addresses:
        raise OSError(f"{host} has no address")
    for address in addresses:
        check_address(address, parts.scheme, allow_private)
    return Pinned(_with_address(parts, addresses[0], port), parts.netloc.rsplit("@", 1)[-1], host)


def _with_address(parts: SplitResult, address: IPAddress, port: int) -> str:
    literal = f"[{address}]" if address.version == 6 else str(address)
    return parts._replace(netloc=f"{literal}:{port}").geturl()
