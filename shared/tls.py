"""HTTPS for the API: LLAMAQ_TLS_CERT and LLAMAQ_TLS_KEY checked before anything serves, one line per problem."""

import ssl
from pathlib import Path

from shared.settings import Settings


class _Encrypted(Exception):
    """Raised from OpenSSL's passphrase callback, which would otherwise prompt on the terminal."""


def _no_passphrase() -> str:
    raise _Encrypted


def scheme(settings: Settings) -> str:
    return "https" if settings.tls_cert else "http"


def unverified_context() -> ssl.SSLContext:
    """A client context that accepts any certificate: for a process to ask its own child whether it answers."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def tls_problem(settings: Settings) -> str | None:
    """Why the API cannot serve HTTPS with these files, said in one line; None when it can, or serves HTTP."""
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    try:
        check_pair(settings.tls_cert, settings.tls_key)
    except ValueError as exc:
        return f"llamaq: invalid setting: {exc}"
    return None


def check_pair(cert: Path, key: Path) -> None:
    """ValueError naming the setting unless `cert` holds a PEM certificate and `key` its unencrypted PEM key."""
    _readable("LLAMAQ_TLS_CERT", cert)
    _readable("LLAMAQ_TLS_KEY", key)
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=cert)
    except ssl.SSLError:
        raise ValueError(f"LLAMAQ_TLS_CERT: {cert} holds no PEM certificate") from None
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key, password=_no_passphrase)
    except _Encrypted:
        raise ValueError(
            f"LLAMAQ_TLS_KEY: {key} is encrypted; give the key without a passphrase (openssl pkey -in KEY -out NEW)"
        ) from None
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise ValueError(f"LLAMAQ_TLS_KEY: {key} is not the key of the certificate {cert}") from None
        raise ValueError(f"LLAMAQ_TLS_KEY: {key} holds no PEM private key") from None


def _readable(setting: str, path: Path) -> None:
    try:
        with path.open("rb") as file:
            file.read(1)
    except OSError as exc:
        raise ValueError(f"{setting}: cannot read {path} ({exc.strerror})") from None
