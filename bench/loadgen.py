"""Open-ended HTTP/1.1 load: keep-alive connections that send one request as fast as answers come back.

Run as its own process (pinned to a core apart from the server's):
`python -m bench.loadgen URL BODY_FILE --connections 64 --seconds 5` prints a JSON summary.
Bounded in time and in requests; it never waits for the work it submits to finish.
"""

import argparse
import asyncio
import contextlib
import sys
import time
from collections import Counter
from urllib.parse import urlsplit

import orjson
import psutil

MAX_REQUESTS = 1_000_000


def request_bytes(url: str, body: bytes) -> bytes:
    """A POST of `body`, or a GET when `body` is empty."""
    parts = urlsplit(url)
    method = "POST" if body else "GET"
    head = f"{method} {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = next((int(line.split(b":", 1)[1]) for line in lines if line.lower().startswith(b"content-length:")), 0)
    await reader.readexactly(length)
    return status


class Tally:
    def __init__(self, measure_from: float, until: float) -> None:
        self.measure_from, self.until = measure_from, until
        self.statuses: Counter[int] = Counter()
        self.latencies: list[float] = []
        self.sent = 0

    def record(self, started: float, status: int) -> None:
        if started >= self.measure_from:
            self.statuses[status] += 1
            self.latencies.append(time.perf_counter() - started)


async def _connection(host: str, port: int, request: bytes, tally: Tally) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < tally.until and tally.sent < MAX_REQUESTS:
            tally.sent += 1
            started = time.perf_counter()
            writer.write(request)
            tally.record(started, await _read_response(reader))
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _server_cores(pid: int | None, tally: Tally) -> float | None:
    """Cores the server process used over the measured window (1.0: one core fully busy)."""
    if pid is None:
        return None
    server = psutil.Process(pid)
    await asyncio.sleep(max(0.0, tally.measure_from - time.perf_counter()))
    before, started = sum(server.cpu_times()[:2]), time.perf_counter()
    await asyncio.sleep(max(0.0, tally.until - time.perf_counter()))
    return (sum(server.cpu_times()[:2]) - before) / (time.perf_counter() - started)


async def blast(
    url: str, body: bytes, connections: int, seconds: float, warmup: float, server_pid: int | None = None
) -> dict[str, object]:
    parts = urlsplit(url)
    now = time.perf_counter()
    tally = Tally(now + warmup, now + warmup + seconds)
    request, host, port = request_bytes(url, body), parts.hostname or "", parts.port or 80
    cores = asyncio.create_task(_server_cores(server_pid, tally))
    await asyncio.gather(*(_connection(host, port, request, tally) for _ in range(connections)))
    server_cores = await cores
    ordered = sorted(tally.latencies)
    count = len(ordered)
    return {
        "requests": count,
        "seconds": seconds,
        "rps": count / seconds,
        "status": {str(code): n for code, n in sorted(tally.statuses.items())},
        "latency_p50_ms": ordered[count // 2] * 1000 if count else None,
        "latency_p99_ms": ordered[min(count - 1, int(count * 0.99))] * 1000 if count else None,
        "server_cores": server_cores,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.loadgen")
    parser.add_argument("url")
    parser.add_argument("body_file", help="JSON body to POST; an empty file sends GETs")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--server-pid", type=int, help="also report the CPU this process used while measured")
    args = parser.parse_args(argv)
    with open(args.body_file, "rb") as f:
        body = f.read()
    work = blast(args.url, body, args.connections, args.seconds, args.warmup, args.server_pid)
    try:
        import uvloop

        result = uvloop.run(work)
    except ImportError:
        result = asyncio.run(work)
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
