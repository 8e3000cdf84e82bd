"""TLS and CORS settings that cannot work stop the start-up with one line naming the setting."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from api.server import main as api_main
from shared.settings import Settings, get_settings
from shared.tls import scheme, tls_problem
from shared.up import _preflight
from tests.certs import CertPair, encrypted_copy, self_signed


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> CertPair:
    return self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def other(tmp_path_factory: pytest.TempPathFactory) -> CertPair:
    return self_signed(tmp_path_factory.mktemp("tls"), "other")


def _settings(**env: object) -> Settings:
    return Settings(redis_url="redis://unused", **env)  # type: ignore[arg-type]


@pytest.mark.parametrize("given", ["tls_cert", "tls_key"])
def test_a_certificate_and_its_key_go_together(monkeypatch: pytest.MonkeyPatch, given: str) -> None:
    monkeypatch.setenv(f"LLAMAQ_{given.upper()}", "/etc/llamaq/some.pem")
    get_settings.cache_clear()
    try:
        with pytest.raises(SystemExit) as stopped:
            get_settings()
    finally:
        get_settings.cache_clear()
    assert str(stopped.value).splitlines() == [
        "llamaq: invalid setting: LLAMAQ_TLS_CERT and LLAMAQ_TLS_KEY go together: set both to serve HTTPS, "
        "or neither for HTTP"
    ]


def test_neither_or_empty_means_plain_http() -> None:
    for settings in (_settings(), _settings(tls_cert="", tls_key="")):
        assert settings.tls_cert is None and settings.tls_key is None
        assert tls_problem(settings) is None and scheme(settings) == "http"


def test_a_good_pair_serves_https(pair: CertPair) -> None:
    settings = _settings(tls_cert=pair.cert, tls_key=pair.key)
    assert tls_problem(settings) is None and scheme(settings) == "https"


def test_files_that_cannot_serve_are_named(pair: CertPair, other: CertPair, tmp_path: Path) -> None:
    missing = tmp_path / "missing.crt"
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    cases = [
        (missing, pair.key, f"LLAMAQ_TLS_CERT: cannot read {missing} (No such file or directory)"),
        (pair.cert, missing, f"LLAMAQ_TLS_KEY: cannot read {missing} (No such file or directory)"),
        (tmp_path, pair.key, f"LLAMAQ_TLS_CERT: cannot read {tmp_path} (Is a directory)"),
        (junk, pair.key, f"LLAMAQ_TLS_CERT: {junk} holds no PEM certificate"),
        (pair.key, pair.key, f"LLAMAQ_TLS_CERT: {pair.key} holds no PEM certificate"),
        (pair.cert, junk, f"LLAMAQ_TLS_KEY: {junk} holds no PEM private key"),
        (pair.cert, other.key, f"LLAMAQ_TLS_KEY: {other.key} is not the key of the certificate {pair.cert}"),
    ]
    for cert, key, message in cases:
        assert tls_problem(_settings(tls_cert=cert, tls_key=key)) == f"llamaq: invalid setting: {message}"


def test_an_encrypted_key_is_refused_without_a_prompt(pair: CertPair) -> None:
    # OpenSSL would ask for the passphrase on the terminal; the check answers at once instead.
    problem = tls_problem(_settings(tls_cert=pair.cert, tls_key=encrypted_copy(pair)))
    assert problem is not None and "is encrypted; give the key without a passphrase" in problem


def test_api_and_up_stop_before_serving_with_a_key_of_another_certificate(
    pair: CertPair, other: CertPair, tmp_path: Path
) -> None:
    settings = _settings(tls_cert=pair.cert, tls_key=other.key, port=0)
    expected = f"llamaq: invalid setting: LLAMAQ_TLS_KEY: {other.key} is not the key of the certificate {pair.cert}"
    with pytest.raises(SystemExit) as stopped:
        api_main(settings)
    assert str(stopped.value) == expected
    assert _preflight(settings, tmp_path) == expected


def test_cors_origins_are_read_as_browsers_send_them() -> None:
    settings = _settings(cors_origins="https://App.example/, http://localhost:5173 ,,")
    assert settings.cors_origins == ["https://app.example", "http://localhost:5173"]
    assert _settings(cors_origins="*").cors_origins == ["*"]
    assert _settings().cors_origins == []


@pytest.mark.parametrize(
    ("origins", "message"),
    [
        ("https://app.example/ui", "'https://app.example/ui' is not an origin: give scheme://host[:port], without"),
        ("app.example", "'app.example' is not an origin: give scheme://host[:port] (or * for any)"),
        ("https://app.example:99999", "is not an origin"),
        ("https://user@app.example", "is not an origin"),
    ],
)
def test_a_cors_origin_that_no_browser_sends_is_refused(origins: str, message: str) -> None:
    with pytest.raises(ValidationError) as refused:
        _settings(cors_origins=origins)
    (error,) = refused.value.errors()
    assert error["loc"] == ("cors_origins",) and message in error["msg"]
