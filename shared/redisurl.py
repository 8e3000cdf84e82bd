"""`LLAMAQ_REDIS_URL` read: a plain Redis URL, or `redis+sentinel://` naming sentinels and the master's service."""

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

SENTINEL_SCHEME = "redis+sentinel"
SENTINEL_PORT = 26379


@dataclass(frozen=True)
class SentinelTarget:
    """`redis+sentinel://[user:pass@]host[:port][,host[:port]...]/<service>[/<db>]`.

    The credentials are the master's (and its replicas'); the sentinels are asked without any. rq-dashboard reads
    the same form itself.
    """

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None


def is_sentinel(url: str) -> bool:
    return url.split("://", 1)[0].lower() == SENTINEL_SCHEME


def parse_sentinel(url: str) -> SentinelTarget:
    """The sentinels, service and database of a `redis+sentinel://` URL; ValueError naming what is wrong."""
    parts = urlsplit(url)
    if parts.scheme.lower() != SENTINEL_SCHEME:
        raise ValueError(f"not a {SENTINEL_SCHEME}:// URL")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    sentinels = tuple(_host_port(host) for host in hosts.split(",") if host)
    if not sentinels:
        raise ValueError(f"{SENTINEL_SCHEME}:// needs at least one sentinel host[:port]")
    path = [part for part in parts.path.split("/") if part]
    if not path or len(path) > 2:
        raise ValueError(f"{SENTINEL_SCHEME}:// needs /<service name>[/<db>] after the sentinels")
    if parts.query:
        raise ValueError(f"a {SENTINEL_SCHEME}:// URL takes no ?options")
    if len(path) == 2 and not path[1].isdigit():
        raise ValueError(f"the database of a {SENTINEL_SCHEME}:// URL is a number, not {path[1]!r}")
    return SentinelTarget(
        sentinels=sentinels,
        service=unquote(path[0]),
        db=int(path[1]) if len(path) == 2 else 0,
        username=unquote(username) or None,
        password=unquote(password) or None,
    )


def _host_port(address: str) -> tuple[str, int]:
    if address.startswith("["):  # [IPv6]:port
        host, _, rest = address[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        host, _, port = address.partition(":")
    if not host or (port and not port.isdigit()):
        raise ValueError(f"bad sentinel address {address!r} (host[:port])")
    return host, int(port) if port else SENTINEL_PORT
