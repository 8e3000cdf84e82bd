"""The `llamaq` command: `up` on a fresh machine, and `api` + two `worker` processes sharing one queue."""

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import orjson
import psutil
import pytest
from redis import Redis

from shared import events, names
from shared.redis_server import RedisServer
from shared.up import usable_cpus
from tests.probes import job_of, poll, wait_for
from tests.stack import MODEL, free_port, running_stack

pytestmark = pytest.mark.integration

LLAMAQ = Path(sys.executable).with_name("llamaq")


class Output:
    """The lines a process prints, read on a thread so every wait for one has a deadline."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        assert process.stdout is not None
        self._stdout = process.stdout
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self._stdout:
            self._queue.put(line)

    def close(self) -> None:
        """Once the process and every child holding the pipe are gone, the reader sees its end."""
        self._reader.join(timeout=10)
        self._stdout.close()

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        found = poll(lambda: self._next_match(pattern), timeout)
        if found is None:
            raise AssertionError(f"no line matching {pattern!r} in {timeout} s; output so far: {self.lines}")
        return found

    def _next_match(self, pattern: str) -> re.Match[str] | None:
        """Read the lines printed so far up to the first that matches `pattern`."""
        while not self._queue.empty():
            line = self._queue.get_nowait()
            self.lines.append(line)
            if found := re.search(pattern, line):
                return found
        return None


def fresh_machine_env(home: Path, port: int) -> dict[str, str]:
    """This environment minus every LLAMAQ_ setting, with an empty home and state directory."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("LLAMAQ_")}
    env.update(HOME=str(home), XDG_STATE_HOME=str(home / "state"), LLAMAQ_PORT=str(port))
    return env


def end_up(up: subprocess.Popen[str], children: list[psutil.Process], output: Output) -> None:
    """Whatever a test left running of a `llamaq up` is killed: the process, then every child it had."""
    if up.poll() is None:
        children = children or psutil.Process(up.pid).children(recursive=True)
        up.kill()
    up.wait(10)
    for child in children:
        if child.is_running():
            child.kill()
    output.close()


def stop_like(how: str, up: subprocess.Popen[str]) -> None:
    """`ctrl-c`: a terminal sends SIGINT to its whole foreground process group; `sigterm`: a supervisor."""
    if how == "ctrl-c":
        os.killpg(up.pid, signal.SIGINT)
    else:
        up.send_signal(signal.SIGTERM)


@pytest.mark.parametrize("how", ["sigterm", "ctrl-c"])
def test_up_serves_and_stops_every_child(tmp_path_factory: pytest.TempPathFactory, how: str) -> None:
    home = tmp_path_factory.mktemp("home")  # short: the embedded Redis listens on a unix socket inside it
    port = free_port()
    up = subprocess.Popen(
        [str(LLAMAQ), "up"],
        env=fresh_machine_env(home, port),
        cwd=home,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # a process group of its own, like a job in a terminal
    )
    children: list[psutil.Process] = []
    output = Output(up)
    try:
        base_url = output.wait_for(r"serving \S+ at (http://\S+/v1)", timeout=120)[1]
        assert base_url == f"http://127.0.0.1:{port}/v1"
        redis_url = output.wait_for(r"redis at (\S+);", timeout=10)[1]
        assert redis_url.startswith(f"unix://{home / 'state' / 'llamaq'}"), "the embedded redis-server"
        children = psutil.Process(up.pid).children(recursive=True)
        commands = sorted(" ".join(child.cmdline()) for child in children)
        # One worker a usable CPU (LLAMAQ_N_THREADS is 1), the API, the embedded Redis.
        assert len(children) == usable_cpus() + 2, commands
        for part, count in (("shared.cli api", 1), ("shared.cli worker", usable_cpus()), ("redis-server", 1)):
            assert sum(part in command for command in commands) == count, commands

        with openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=60) as client:
            reply = client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=4
            )
        assert reply.choices[0].message.content and reply.usage is not None

        stop_like(how, up)
        assert up.wait(60) == 0
        output.wait_for(r"llamaq: stopped", timeout=5)
        assert [child.pid for child in children if child.is_running()] == [], "a child outlived `llamaq up`"
        assert not [line for line in output.lines if "Traceback" in line], "".join(output.lines)
    finally:
        end_up(up, children, output)
    # Redis stopped last: the worker deregistered itself before it went, as the persisted state shows.
    server = RedisServer(home / "state" / "llamaq" / "redis")
    with Redis.from_url(server.start()) as redis:
        try:
            assert redis.exists(names.job_key(job_of(reply.id))), "the state was persisted"
            assert redis.zcard(names.model_workers_key(MODEL)) == 0
            assert list(redis.scan_iter(match=names.worker_key("*"))) == []
        finally:
            server.stop()


def stack_client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0, timeout=120)


def _rq_loops(redis: Redis, worker: str, slots: int) -> list[bytes]:
    """The RQ workers of `worker`'s slots, once all `slots` of them have registered."""

    def registered() -> list[bytes] | None:
        found = [key for key in redis.smembers("rq:workers") if key.startswith(f"rq:worker:{worker}.".encode())]
        return found if len(found) == slots else None

    return wait_for(registered, f"the {slots} RQ loops of {worker}", timeout=30)


def test_two_workers_take_jobs_from_one_queue(fresh_redis_url: str, logs_dir: Path) -> None:
    with running_stack(fresh_redis_url, logs_dir, workers=2) as stack, Redis.from_url(fresh_redis_url) as redis:
        registered = {name.decode() for name in redis.zrange(names.model_workers_key(MODEL), 0, -1)}
        assert len(registered) == 2
        expected_queues = ",".join(names.queue_name(MODEL, lane) for lane in names.LANES)
        for name in registered:
            # One RQ loop a slot, each an RQ worker named after its llamaq worker (they register as they start).
            loops = _rq_loops(redis, name, int(redis.hget(names.worker_key(name), "slots")))
            assert {redis.hget(key, "queues").decode() for key in loops} == {expected_queues}

        client = stack_client(stack.base_url)

        def ask(seed: int) -> str:
            messages = [{"role": "user", "content": "Tell me about rivers."}]
            reply = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=16, seed=seed)
            return "job_" + reply.id.removeprefix("chatcmpl-")

        with client, ThreadPoolExecutor(6) as pool:
            jobs = list(pool.map(ask, range(6)))

        ran_on = {}
        for job in jobs:
            recorded = redis.hget(names.job_key(job), "worker").decode()
            started = [
                orjson.loads(fields[b"e"])
                for _, fields in redis.xrange(names.events_key(job))
                if orjson.loads(fields[b"e"])["k"] == events.Kind.STARTED
            ]
            assert [event["worker"] for event in started] == [recorded]
            ran_on[job] = recorded
    assert set(ran_on.values()) == registered, f"one worker took every job: {ran_on}"


SIGILL_ON_WORKER_START = """
import os, signal, sys
if sys.orig_argv[-2:] == ["shared.cli", "worker"]:
    print("llama_model_load: loading model", flush=True)
    os.kill(os.getpid(), signal.SIGILL)
"""


def test_up_names_a_worker_killed_by_sigill_with_its_log_and_the_fix(tmp_path_factory: pytest.TempPathFactory) -> None:
    home = tmp_path_factory.mktemp("home")
    hook = home / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SIGILL_ON_WORKER_START)  # the worker process dies as a bad build makes it
    env = fresh_machine_env(home, free_port()) | {"PYTHONPATH": str(hook)}
    up = subprocess.Popen(
        [str(LLAMAQ), "up"], env=env, cwd=home, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    output = Output(up)
    try:
        assert up.wait(60) == 1
        # One worker a CPU: whichever died first is named.
        output.wait_for(r"llamaq: the worker( #\d+)? was killed by SIGILL \(signal 4\) during start-up", timeout=5)
        output.wait_for(r"    \| llama_model_load: loading model", timeout=5)
        output.wait_for(r"instructions this CPU or its kernel refuses", timeout=5)
        venv_python = re.escape(str(Path(sys.executable).parent)) + r"/python3?"
        output.wait_for(venv_python + r" -m worker\.engine_install", timeout=5)
        output.wait_for(r"llamaq: stopped", timeout=5)
    finally:
        if up.poll() is None:
            up.kill()
            up.wait(10)
        output.close()


def test_up_says_when_its_port_is_taken(tmp_path_factory: pytest.TempPathFactory) -> None:
    home = tmp_path_factory.mktemp("home")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [str(LLAMAQ), "up"], env=fresh_machine_env(home, port), capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 1
    assert f"llamaq: cannot listen on 127.0.0.1:{port}" in done.stderr and "LLAMAQ_PORT" in done.stderr


def test_up_names_a_worker_that_exits_with_its_reason(tmp_path_factory: pytest.TempPathFactory) -> None:
    home = tmp_path_factory.mktemp("home")
    env = fresh_machine_env(home, free_port()) | {"LLAMAQ_MODEL_PATH": str(home / "missing.gguf")}
    done = subprocess.run([str(LLAMAQ), "up"], env=env, cwd=home, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert re.search(r"llamaq: the worker( #\d+)? exited with code 1 during start-up", done.stderr), done.stderr
    assert f"    | llamaq worker: no model file at {home / 'missing.gguf'} (LLAMAQ_MODEL_PATH)" in done.stderr
    assert "likely cause" not in done.stderr


def test_a_second_up_on_the_same_state_refuses_before_starting(tmp_path_factory: pytest.TempPathFactory) -> None:
    home = tmp_path_factory.mktemp("home")
    first = RedisServer(home / "state" / "llamaq" / "redis")  # what a running `llamaq up` holds
    first.start()
    try:
        done = subprocess.run(
            [str(LLAMAQ), "up"], env=fresh_machine_env(home, free_port()), capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 1
        assert "llamaq: another llamaq up is running with its Redis in" in done.stderr
        with Redis.from_url(first.url) as redis:
            assert redis.ping(), "the first one's Redis is untouched"
    finally:
        first.stop()
