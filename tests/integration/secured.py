"""A redis-server that requires a password, with an ACL user for llamaq (as an operator would run it)."""

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

from redis import Redis
from redis.exceptions import RedisError

from shared.redis_server import redis_server_binary
from tests.probes import poll
from tests.stack import free_port

ADMIN_PASSWORD = "admin-secret"
USER, USER_PASSWORD = "llamaq", "app-secret"


@contextlib.contextmanager
def password_redis(directory: Path, timeout: float = 10.0) -> Iterator[str]:
    """Yields `redis://llamaq:<password>@127.0.0.1:<port>/0`; the default user needs ADMIN_PASSWORD."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    args = [
        redis_server_binary(),
        "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory),
        "--save", "", "--appendonly", "no", "--maxmemory-policy", "noeviction", "--loglevel", "warning",
        "--requirepass", ADMIN_PASSWORD,
        "--user", USER, "on", f">{USER_PASSWORD}", "~*", "&*", "+@all",
    ]  # fmt: skip
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://{USER}:{USER_PASSWORD}@127.0.0.1:{port}/0"
    try:

        def up_or_gone() -> bool:
            with contextlib.suppress(RedisError, OSError), Redis.from_url(url) as client:
                return bool(client.ping())
            return process.poll() is not None

        if not poll(up_or_gone, timeout) or process.poll() is not None:
            raise RuntimeError("password-protected redis-server did not start")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
