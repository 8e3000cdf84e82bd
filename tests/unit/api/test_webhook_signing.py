"""The signature is Standard Webhooks as OpenAI's SDK checks it: `client.webhooks.unwrap` accepts it, typed."""

import base64
import hashlib
import hmac
import time

import openai
import pytest
from openai.types.webhooks import BatchCompletedWebhookEvent, ResponseCompletedWebhookEvent
from pydantic import SecretStr

from api.webhook_signing import signed_headers
from shared.webhook_config import secret_bytes
from shared.webhooks import thin_event

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def _signed(kind: str, object_id: str) -> tuple[bytes, dict[str, str]]:
    event_id, body = thin_event({"type": kind, "id": object_id, "owner": "public", "at": int(time.time())})
    return body, signed_headers(secret_bytes(SecretStr(SECRET)), event_id, int(time.time()), body)


@pytest.fixture
def client() -> openai.OpenAI:
    return openai.OpenAI(api_key="unused", base_url="http://127.0.0.1:9/v1")


def test_the_official_client_unwraps_a_signed_batch_event(client: openai.OpenAI) -> None:
    body, headers = _signed("batch.completed", "batch_1")
    event = client.webhooks.unwrap(body, headers, secret=SECRET)

    assert isinstance(event, BatchCompletedWebhookEvent)
    assert event.data.id == "batch_1" and event.object == "event" and event.id == headers["webhook-id"]
    assert event.id.startswith("evt_")


def test_a_response_event_unwraps_as_its_type(client: openai.OpenAI) -> None:
    body, headers = _signed("response.completed", "resp_1")
    assert isinstance(client.webhooks.unwrap(body, headers, secret=SECRET), ResponseCompletedWebhookEvent)


def test_a_tampered_body_or_another_secret_is_rejected(client: openai.OpenAI) -> None:
    body, headers = _signed("batch.completed", "batch_1")
    with pytest.raises(openai.InvalidWebhookSignatureError):
        client.webhooks.unwrap(body.replace(b"batch_1", b"batch_2"), headers, secret=SECRET)
    other = "whsec_" + base64.b64encode(b"another secret, 32 bytes long!!!").decode()
    with pytest.raises(openai.InvalidWebhookSignatureError):
        client.webhooks.unwrap(body, headers, secret=other)


def test_the_signed_content_is_id_timestamp_and_body() -> None:
    headers = signed_headers(b"key", "evt_1", 1_700_000_000, b"{}")
    # Computed independently: HMAC-SHA256("key", "evt_1.1700000000.{}"), base64.
    expected = base64.b64encode(hmac.new(b"key", b"evt_1.1700000000.{}", hashlib.sha256).digest()).decode()
    assert headers["webhook-signature"] == f"v1,{expected}"
    assert headers["webhook-id"] == "evt_1" and headers["webhook-timestamp"] == "1700000000"
