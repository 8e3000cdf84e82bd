"""rq-dashboard at /dashboard: behind credentials, read-only by default, and no user text in what it shows."""

import base64
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from redis import Redis
from rq import Queue
from rq.serializers import JSONSerializer

from shared import names, rqcontract
from shared.payload import JOB_DESCRIPTION, JOB_FUNCTION
from tests.integration.secured import password_redis
from tests.probes import wait_for
from tests.stack import MODEL, ROOT, Stack, free_port, running_stack, wait_http

pytestmark = pytest.mark.integration

API_KEY, DASHBOARD_KEY = "api-key", "dash-key"
MARKER = "qq9marker"
HOSTILE = f"<script>alert('{MARKER}')</script><img src=x onerror=alert(1)> {MARKER}"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    directory = tmp_path_factory.mktemp("dashboard")
    with (
        password_redis(directory / "redis") as url,
        running_stack(url, directory / "logs", API_KEYS=API_KEY, DASHBOARD_KEYS=DASHBOARD_KEY) as stack,
    ):
        with Redis.from_url(url) as redis:
            # A job nobody serves: it stays queued with the hostile prompt in its arguments.
            payload = {"id": "job_hostile", "messages": [{"role": "user", "content": HOSTILE}]}
            queue = Queue(names.queue_name("ghost", "interactive"), connection=redis, serializer=JSONSerializer)
            queue.enqueue_call(JOB_FUNCTION, args=[payload], description=JOB_DESCRIPTION, job_id="job_hostile")
        yield stack


def basic(key: str, user: str = "ops") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{key}".encode()).decode()}


def test_refuses_without_the_dashboard_key(dashboard: Stack) -> None:
    url = f"{dashboard.base_url}/dashboard/"
    for headers in ({}, basic("wrong"), basic(API_KEY), {"Authorization": "Bearer wrong"}, basic("")):
        reply = httpx.get(url, headers=headers, timeout=10)
        assert reply.status_code == 401, headers
        assert reply.headers["www-authenticate"].startswith("Basic")
        assert set(reply.json()["error"]) == {"message", "type", "param", "code"}
    for path in ("/dashboard/0/data/queues.json", "/dashboard/static/js/jquery-3.5.1.min.js"):
        assert httpx.get(f"{dashboard.base_url}{path}", timeout=10).status_code == 401
    assert httpx.get(url, headers=basic(DASHBOARD_KEY), timeout=10).status_code == 200
    assert httpx.get(url, headers={"Authorization": f"Bearer {DASHBOARD_KEY}"}, timeout=10).status_code == 200


def test_destructive_actions_are_off(dashboard: Stack) -> None:
    queue = names.queue_name("ghost", "interactive")
    for method, path in (
        ("POST", "/dashboard/job/job_hostile/delete"),
        ("POST", f"/dashboard/queue/{queue}/queued/empty"),
        ("GET", f"/dashboard/requeue/{queue}"),
    ):
        reply = httpx.request(method, f"{dashboard.base_url}{path}", headers=basic(DASHBOARD_KEY), timeout=10)
        assert reply.status_code == 403 and reply.json()["error"]["code"] == "dashboard_read_only"
    with Redis.from_url(dashboard.redis_url) as redis:
        assert redis.exists(rqcontract.job_key("job_hostile")) == 1


def test_no_prompt_reaches_what_it_shows(dashboard: Stack) -> None:
    auth = basic(DASHBOARD_KEY)
    with httpx.Client(base_url=f"{dashboard.base_url}/dashboard", headers=auth, timeout=10) as http:
        queued = http.get(f"/0/data/jobs/{names.queue_name('ghost', 'interactive')}/queued/8/asc/1.json")
        assert [job["id"] for job in queued.json()["jobs"]] == ["job_hostile"]
        pages = [queued, http.get("/0/data/job/job_hostile.json"), http.get("/0/view/job/job_hostile")]
        with _generating(dashboard):
            workers = _busy_workers(http)
        pages.append(workers)
        busy = [worker for worker in workers.json()["workers"] if worker["current_job"] != "idle"]
        assert busy and busy[0]["current_job"]["call_string"] == f"{JOB_FUNCTION}(...)"
    for page in pages:
        assert page.status_code == 200
        assert MARKER not in page.text and "<script>alert" not in page.text


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (Debian: apt-get install chromium)")
def test_headless_chromium_sees_it_with_credentials_only(dashboard: Stack, tmp_path: Path) -> None:
    host = dashboard.base_url.removeprefix("http://")
    page = f"http://ops:{DASHBOARD_KEY}@{host}/dashboard/"
    screenshot = tmp_path / "dashboard.png"
    _chromium(tmp_path / "profile-1", f"--screenshot={screenshot}", "--window-size=1280,900", page)
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 10_000
    dom = _chromium(tmp_path / "profile-2", "--dump-dom", page)
    # The queue table is filled by the page's own requests for JSON: they too went through with credentials.
    assert "RQ dashboard" in dom and f"<td>{names.queue_name('ghost', 'interactive')}</td>" in dom
    # Without credentials Chromium gets the 401 challenge and renders nothing of the dashboard.
    refused = _chromium(tmp_path / "profile-3", "--dump-dom", f"http://{host}/dashboard/")
    assert "RQ dashboard" not in refused and names.queue_name("ghost", "interactive") not in refused


def _chromium(profile: Path, *args: str) -> str:
    assert CHROMIUM is not None
    command = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=5000", *args]
    done = subprocess.run(command, capture_output=True, timeout=90, check=True)
    return done.stdout.decode(errors="replace")


class _generating:
    """A long streamed generation with the hostile prompt, closed (and so cancelled) on exit."""

    def __init__(self, stack: Stack) -> None:
        self.client = openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=API_KEY, max_retries=0, timeout=60)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        messages = [{"role": "user", "content": f"Write a long story. {HOSTILE}"}]
        with self.client.chat.completions.create(
            model=MODEL, messages=messages, max_tokens=1500, stream=True
        ) as stream:
            for _ in stream:
                if self.stop.is_set():
                    return

    def __enter__(self) -> None:
        self.thread.start()

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(60)


def _busy_workers(http: httpx.Client, timeout: float = 30.0) -> httpx.Response:
    def busy() -> httpx.Response | None:
        reply = http.get("/0/data/workers.json")
        return reply if any(worker["current_job"] != "idle" for worker in reply.json()["workers"]) else None

    return wait_for(busy, "the worker to show a current job", timeout, interval=0.1)


def test_llamaq_dashboard_serves_it_alone(dashboard: Stack) -> None:
    port = free_port()
    env = {**dashboard.env, "LLAMAQ_PORT": str(port)}
    process = subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "dashboard"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/health/live")
        assert httpx.get(f"{base}/dashboard/", timeout=10).status_code == 401
        queues = httpx.get(f"{base}/dashboard/0/data/queues.json", headers=basic(DASHBOARD_KEY), timeout=10).json()
        assert names.queue_name("ghost", "interactive") in [queue["name"] for queue in queues["queues"]]
    finally:
        process.terminate()
        process.wait(15)
