"""Webhook settings that cannot work stop the start-up with an error naming the setting."""

import base64

import pytest
from pydantic import ValidationError

from shared.keys import owner_of_key
from shared.settings import Settings, get_settings
from shared.webhook_config import key_endpoints

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef").decode()


def _settings(**env: str) -> Settings:
    return Settings(redis_url="redis://unused", **env)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"webhook_urls": "https://a.example/h"}, "LLAMAQ_WEBHOOK_SECRET (whsec_...) is required"),
        ({"webhook_urls": "https://a.example/h", "webhook_secret": "abc"}, "must start with 'whsec_'"),
        ({"webhook_urls": "https://a.example/h", "webhook_secret": "whsec_%%%"}, "is not base64"),
        ({"webhook_urls": "https://a.example/h", "webhook_secret": "whsec_YWJj"}, "too short"),
        ({"webhook_urls": "ftp://a.example/h", "webhook_secret": SECRET}, "must be an absolute https:// URL"),
        ({"webhook_urls": "a.example/h", "webhook_secret": SECRET}, "must be an absolute https:// URL"),
        ({"webhook_urls": "http://a.example/h", "webhook_secret": SECRET}, "uses http; use https"),
        ({"webhook_urls": "https://u:p@a.example/h", "webhook_secret": SECRET}, "carries credentials"),
        ({"webhook_key_urls": "[1]", "webhook_secret": SECRET}, "LLAMAQ_WEBHOOK_KEY_URLS must be a JSON object"),
        ({"webhook_key_urls": '{"k": "https://a.example"}'}, "LLAMAQ_WEBHOOK_SECRET (whsec_...) is required"),
    ],
)
def test_bad_webhook_settings_are_refused_naming_the_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _settings(**env)


def test_good_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLAMAQ_WEBHOOK_URLS", "https://a.example/h, http://10.0.0.5:8080/h")
    monkeypatch.setenv("LLAMAQ_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("LLAMAQ_WEBHOOK_ALLOW_PRIVATE", "true")
    monkeypatch.setenv("LLAMAQ_WEBHOOK_KEY_URLS", '{"key-1": "https://b.example/h,https://c.example/h"}')
    settings = _settings()

    assert settings.webhook_urls == ["https://a.example/h", "http://10.0.0.5:8080/h"]
    assert key_endpoints(settings.webhook_key_urls) == {
        owner_of_key("key-1"): ["https://b.example/h", "https://c.example/h"]
    }
    assert "whsec" not in repr(settings)


def test_no_webhooks_by_default() -> None:
    settings = _settings()
    assert settings.webhook_urls == [] and settings.webhook_secret is None and not settings.webhook_allow_private


def test_llamaq_stops_at_start_up_naming_the_bad_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLAMAQ_N_CTX", "3")
    get_settings.cache_clear()
    try:
        with pytest.raises(SystemExit) as stopped:
            get_settings()
    finally:
        get_settings.cache_clear()
    assert str(stopped.value).splitlines() == [
        "llamaq: invalid setting: LLAMAQ_N_CTX: Input should be greater than or equal to 64",
    ]


def test_a_cross_setting_error_is_one_line_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLAMAQ_WEBHOOK_URLS", "https://a.example/h")
    get_settings.cache_clear()
    try:
        with pytest.raises(SystemExit) as stopped:
            get_settings()
    finally:
        get_settings.cache_clear()
    assert str(stopped.value) == (
        "llamaq: invalid setting: LLAMAQ_WEBHOOK_SECRET (whsec_...) is required when webhook endpoints are set"
    )
