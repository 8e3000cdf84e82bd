"""Webhook settings checked at start-up: endpoint URLs, the `whsec_` secret, the endpoints of API keys."""

import base64
import binascii
from urllib.parse import urlsplit

import orjson
from pydantic import SecretStr

from shared.keys import owner_of_key

SECRET_PREFIX = "whsec_"


def secret_bytes(secret: SecretStr) -> bytes:
    """The HMAC key: the base64 text after `whsec_` (Standard Webhooks, as OpenAI's SDK reads it)."""
    text = secret.get_secret_value()
    if not text.startswith(SECRET_PREFIX):
        raise ValueError(f"LLAMAQ_WEBHOOK_SECRET must start with '{SECRET_PREFIX}'")
    try:
        key = base64.b64decode(text[len(SECRET_PREFIX) :], validate=True)
    except binascii.Error:
        raise ValueError("LLAMAQ_WEBHOOK_SECRET: the part after 'whsec_' is not base64") from None
    if len(key) < 16:
        raise ValueError("LLAMAQ_WEBHOOK_SECRET is too short: use at least 16 random bytes, base64-encoded")
    return key


def check_url(url: str, allow_private: bool, setting: str = "LLAMAQ_WEBHOOK_URLS") -> None:
    """An absolute http(s) URL with a host; plain http only where private addresses are allowed."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValueError(f"{setting}: '{url}' is not a valid URL") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{setting}: '{url}' must be an absolute https:// URL")
    if parts.scheme == "http" and not allow_private:
        raise ValueError(
            f"{setting}: '{url}' uses http; use https (plain http is allowed only to private addresses, "
            "with LLAMAQ_WEBHOOK_ALLOW_PRIVATE=true)"
        )
    if parts.username or parts.password:
        raise ValueError(f"{setting}: '{url}' carries credentials; put a token in the path or query instead")


def key_endpoints(key_urls: SecretStr | None) -> dict[str, list[str]]:
    """LLAMAQ_WEBHOOK_KEY_URLS as owner (the digest every record stores) -> endpoints."""
    if key_urls is None or not key_urls.get_secret_value().strip():
        return {}
    try:
        mapping = orjson.loads(key_urls.get_secret_value())
    except orjson.JSONDecodeError:
        raise ValueError('LLAMAQ_WEBHOOK_KEY_URLS must be a JSON object {"<api key>": "<url>,<url>"}') from None
    if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
        raise ValueError('LLAMAQ_WEBHOOK_KEY_URLS must be a JSON object {"<api key>": "<url>,<url>"}')
    return {owner_of_key(key): [u.strip() for u in urls.split(",") if u.strip()] for key, urls in mapping.items()}


def check_webhooks(urls: list[str], secret: SecretStr | None, allow_private: bool, key_urls: SecretStr | None) -> None:
    """Raise a ValueError naming the setting when the webhook settings cannot work together."""
    by_key = key_endpoints(key_urls)
    if (urls or by_key) and secret is None:
        raise ValueError("LLAMAQ_WEBHOOK_SECRET (whsec_...) is required when webhook endpoints are set")
    if secret is not None:
        secret_bytes(secret)
    for url in urls:
        check_url(url, allow_private)
    for endpoints in by_key.values():
        for url in endpoints:
            check_url(url, allow_private, "LLAMAQ_WEBHOOK_KEY_URLS")
