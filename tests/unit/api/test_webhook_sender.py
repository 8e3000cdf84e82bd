"""One attempt against a local receiver: 2xx acknowledges, a redirect is a failure never followed, timeouts fail."""

import base64
import time
from collections.abc import AsyncIterator

import openai
import pytest

from api.webhook_sender import Sender
from tests.receiver import Received, receiving
from tests.stack import free_port

KEY = b"0123456789abcdef"
SECRET = "whsec_" + base64.b64encode(KEY).decode()
BODY = b'{"id":"evt_1","object":"event","created_at":1,"type":"batch.completed","data":{"id":"batch_1"}}'


@pytest.fixture
async def sender() -> AsyncIterator[Sender]:
    sending = Sender(KEY, allow_private=True, seconds=0.5)
    yield sending
    await sending.aclose()


@pytest.mark.parametrize(("status", "error"), [(200, None), (204, None), (500, "HTTP 500"), (404, "HTTP 404")])
async def test_any_2xx_acknowledges(sender: Sender, status: int, error: str | None) -> None:
    with receiving(answer=lambda _: status) as receiver:
        assert await sender.attempt(receiver.url(), "evt_1", BODY) == error


async def test_a_redirect_fails_the_attempt_and_is_not_followed(sender: Sender) -> None:
    with receiving(answer=lambda got: 302 if got[-1].path == "/hook" else 200) as receiver:
        assert await sender.attempt(receiver.url(), "evt_1", BODY) == "HTTP 302 (redirects are not followed)"
        assert [got.path for got in receiver.received] == ["/hook"]


async def test_an_endpoint_that_answers_too_late_or_not_at_all_fails(sender: Sender) -> None:
    def slow(_: list[Received]) -> int:
        time.sleep(1.5)
        return 200

    with receiving(answer=slow) as receiver:
        assert await sender.attempt(receiver.url(), "evt_1", BODY) == "no answer within 0.5 s"
    refused = await sender.attempt(f"http://127.0.0.1:{free_port()}/hook", "evt_1", BODY)
    assert refused is not None and "could not reach the endpoint" in refused


async def test_the_request_goes_to_the_checked_address_under_its_own_host_name_signed(sender: Sender) -> None:
    with receiving() as receiver:
        assert await sender.attempt(f"http://localhost:{receiver.port}/hook?t=1", "evt_1", BODY) is None
        (got,) = receiver.received
    assert got.path == "/hook?t=1" and got.headers["host"] == f"localhost:{receiver.port}" and got.body == BODY
    with openai.OpenAI(api_key="unused") as client:
        event = client.webhooks.unwrap(got.body, got.headers, secret=SECRET)
    assert event.id == "evt_1" and got.headers["webhook-id"] == "evt_1"
