"""HTTPS with a self-signed certificate (LLAMAQ_TLS_CERT/KEY) and CORS for browsers, on a real stack and `up`."""

import contextlib
import io
import ipaddress
import re
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import psutil
import pytest
from cryptography import x509
from openai.types.chat import ChatCompletionMessageParam

from shared.redis_server import RedisServer
from shared.settings import Settings
from shared.tls import tls_problem
from tests.certs import CertPair, self_signed
from tests.integration.test_cli import LLAMAQ, Output, end_up, fresh_machine_env
from tests.stack import MODEL, ROOT, Stack, free_port, running_stack, trusting

pytestmark = pytest.mark.integration

KEY = "sk-tls"
APP = "https://app.example"
README = (ROOT / "README.md").read_text()
HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tuple[CertPair, CertPair]:
    """The server's certificate, and another that no server here uses (a wrong CA)."""
    directory = tmp_path_factory.mktemp("certs")
    return self_signed(directory, "server"), self_signed(directory, "stranger")


@pytest.fixture(scope="module")
def https_stack(certs: tuple[CertPair, CertPair], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """An API on HTTPS with CORS for APP and a key, one worker, a Redis of its own."""
    server, _ = certs
    redis = RedisServer(tmp_path_factory.mktemp("redis"), persist=False)
    cert, key = str(server.cert), str(server.key)
    logs = tmp_path_factory.mktemp("tls")
    try:
        with running_stack(redis.start(), logs, tls_cert=cert, tls_key=key, cors_origins=APP, api_keys=KEY) as stack:
            yield stack
    finally:
        redis.stop()


def client(base_url: str, verify: ssl.SSLContext | bool) -> openai.OpenAI:
    # The openai client takes an httpx client too (it is typed for its own httpx2 fork).
    http = httpx.Client(verify=verify, timeout=60)
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key=KEY, max_retries=0, http_client=http)  # type: ignore[arg-type]


def test_the_official_client_chats_over_https(https_stack: Stack) -> None:
    assert https_stack.base_url.startswith("https://")
    with client(https_stack.base_url, https_stack.verify) as openai_client:
        reply = openai_client.chat.completions.create(model=MODEL, messages=HI, max_tokens=4)
        assert reply.choices[0].message.content and reply.usage is not None
        stream = openai_client.chat.completions.create(model=MODEL, messages=HI, max_tokens=4, stream=True)
        assert [chunk.id for chunk in stream], "the stream carried chunks"


def test_plain_http_to_the_https_port_gets_no_answer(https_stack: Stack) -> None:
    plain = https_stack.base_url.replace("https://", "http://")
    with client(plain, True) as openai_client, pytest.raises(openai.APIConnectionError):
        openai_client.models.list()


def test_a_client_that_trusts_another_certificate_refuses_the_server(
    https_stack: Stack, certs: tuple[CertPair, CertPair]
) -> None:
    _, stranger = certs
    with (
        client(https_stack.base_url, trusting(stranger.cert)) as openai_client,
        pytest.raises(openai.APIConnectionError) as refused,
    ):
        openai_client.models.list()
    assert "CERTIFICATE_VERIFY_FAILED" in repr(refused.value.__cause__)


def test_a_browser_preflight_and_a_request_without_the_key_over_https(https_stack: Stack) -> None:
    with httpx.Client(base_url=https_stack.base_url, verify=https_stack.verify, timeout=10) as http:
        asked = {"Origin": APP, "Access-Control-Request-Method": "POST"}
        allowed = http.options(
            "/v1/chat/completions", headers={**asked, "Access-Control-Request-Headers": "authorization,content-type"}
        )
        other = http.options("/v1/chat/completions", headers={**asked, "Origin": "https://other.example"})
        refused = http.post("/v1/chat/completions", json={"model": MODEL, "messages": HI}, headers={"Origin": APP})
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == APP
    assert allowed.headers["access-control-allow-headers"] == "authorization,content-type"
    assert "access-control-allow-origin" not in other.headers
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == APP


def test_api_with_a_key_of_another_certificate_stops_with_one_line(certs: tuple[CertPair, CertPair]) -> None:
    server, stranger = certs
    env = {"LLAMAQ_TLS_CERT": str(server.cert), "LLAMAQ_TLS_KEY": str(stranger.key)}
    done = subprocess.run(
        [str(LLAMAQ), "api"],
        env={**fresh_machine_env(server.cert.parent, free_port()), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"llamaq: invalid setting: LLAMAQ_TLS_KEY: {stranger.key} is not the key of the certificate {server.cert}"
    ]


def test_up_serves_https_and_says_so(
    tmp_path_factory: pytest.TempPathFactory, certs: tuple[CertPair, CertPair]
) -> None:
    server, _ = certs
    home = tmp_path_factory.mktemp("home")
    port = free_port()
    env = {**fresh_machine_env(home, port), "LLAMAQ_TLS_CERT": str(server.cert), "LLAMAQ_TLS_KEY": str(server.key)}
    up = subprocess.Popen(
        [str(LLAMAQ), "up", "--workers", "1"],
        env=env,
        cwd=home,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output = Output(up)
    children: list[psutil.Process] = []
    try:
        base_url = output.wait_for(r"serving \S+ at (\S+/v1)", timeout=120)[1]
        assert base_url == f"https://127.0.0.1:{port}/v1"
        children = psutil.Process(up.pid).children(recursive=True)
        http = httpx.Client(verify=trusting(server.cert), timeout=60)
        with openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, http_client=http) as openai_client:  # type: ignore[arg-type]
            reply = openai_client.chat.completions.create(model=MODEL, messages=HI, max_tokens=4)
        assert reply.choices[0].message.content
        up.terminate()
        assert up.wait(60) == 0
    finally:
        end_up(up, children, output)


def readme_block(name: str, language: str) -> str:
    match = re.search(rf"<!-- example:{name} -->\s*```{language}\n(.*?)```", README, re.S)
    assert match, f"README has no example:{name} block"
    return match.group(1)


def test_the_readme_client_example_runs_against_https(https_stack: Stack, certs: tuple[CertPair, CertPair]) -> None:
    server, _ = certs
    code = readme_block("tls", "python")
    for given, here in (
        ("https://127.0.0.1:8000/v1", f"{https_stack.base_url}/v1"),
        ('"cert.pem"', repr(str(server.cert))),
        ('"key1"', repr(KEY)),
    ):
        assert given in code
        code = code.replace(given, here)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "README:tls", "exec"), {})
    assert printed.getvalue().strip()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl binary")
def test_the_readme_certificate_command_makes_a_pair_for_127_0_0_1(tmp_path: Path) -> None:
    command, serve = readme_block("tls-cert", "bash").replace("\\\n", "").strip().splitlines()
    assert serve.endswith("llamaq up") and "LLAMAQ_TLS_CERT=cert.pem LLAMAQ_TLS_KEY=key.pem" in serve
    subprocess.run(["bash", "-c", command], cwd=tmp_path, check=True, capture_output=True, timeout=60)
    settings = Settings(redis_url="redis://unused", tls_cert=tmp_path / "cert.pem", tls_key=tmp_path / "key.pem")
    assert tls_problem(settings) is None
    cert = x509.load_pem_x509_certificate((tmp_path / "cert.pem").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)
