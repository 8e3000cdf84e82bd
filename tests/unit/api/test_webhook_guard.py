"""Webhooks reach public addresses over https only; every other address class needs the allow setting."""

import pytest

from api.webhook_guard import Refused, pin

REFUSED = [
    "127.0.0.1", "127.8.9.1", "[::1]",  # loopback
    "169.254.169.254", "169.254.1.1", "[fe80::1]",  # link-local, the cloud metadata address
    "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "[fc00::1]", "[fd12::1]",  # private
    "0.0.0.0", "[::]",  # unspecified
    "224.0.0.1", "[ff02::1]",  # multicast
    "100.64.0.1", "240.0.0.1",  # shared (CGNAT) and reserved
    "[::ffff:127.0.0.1]", "[::ffff:169.254.169.254]",  # IPv4-mapped
]  # fmt: skip


@pytest.mark.parametrize("host", REFUSED)
async def test_non_public_addresses_are_refused_without_the_setting(host: str) -> None:
    with pytest.raises(Refused):
        await pin(f"https://{host}/hook", allow_private=False)


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]", "10.1.2.3", "169.254.169.254"])
async def test_the_setting_allows_them_over_http_too(host: str) -> None:
    pinned = await pin(f"http://{host}:8080/hook?t=1", allow_private=True)
    assert pinned.url == f"http://{host}:8080/hook?t=1"


async def test_a_public_address_is_allowed_over_https_only() -> None:
    pinned = await pin("https://93.184.215.14/hook", allow_private=False)
    assert pinned.url == "https://93.184.215.14:443/hook"
    for allow in (False, True):
        with pytest.raises(Refused):
            await pin("http://93.184.215.14/hook", allow_private=allow)


async def test_a_name_is_resolved_checked_and_pinned_to_its_address() -> None:
    with pytest.raises(Refused):
        await pin("https://localhost/hook", allow_private=False)
    pinned = await pin("http://localhost:9000/hook", allow_private=True)
    assert pinned.url in ("http://127.0.0.1:9000/hook", "http://[::1]:9000/hook")
    assert pinned.host == "localhost:9000" and pinned.sni == "localhost"
