"""The one check of a presented secret against the configured keys."""

import hashlib
import hmac


def key_matches(secret: str | None, keys: list[str]) -> bool:
    """Constant-time comparison against every key, so timing reveals neither which nor how much matched."""
    matched = False
    for key in keys:
        matched |= hmac.compare_digest((secret or "").encode(), key.encode())
    return matched and bool(secret)


def owner_of_key(key: str) -> str:
    """The owner id a key's jobs, files and batches are stored under: a digest, never the key itself."""
    return hashlib.sha256(key.encode()).hexdigest()[:24]
