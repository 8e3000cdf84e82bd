"""Browser origins of LLAMAQ_CORS_ORIGINS, checked at start-up: `*`, or `scheme://host[:port]` as browsers send it."""

from urllib.parse import urlsplit


def check_origin(origin: str) -> str:
    """The origin as a browser's `Origin` header spells it (lower case, no trailing slash); ValueError if none."""
    if origin == "*":
        return origin
    trimmed = origin.removesuffix("/")
    try:
        parts = urlsplit(trimmed)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        parts = None
    if parts is None or not parts.scheme or not parts.hostname or parts.username or parts.password:
        raise ValueError(f"'{origin}' is not an origin: give scheme://host[:port] (or * for any)")
    if parts.path or parts.query or parts.fragment:
        raise ValueError(f"'{origin}' is not an origin: give scheme://host[:port], without a path")
    # A browser sends the scheme and host in lower case; the middleware compares the strings exactly.
    return trimmed.lower()
