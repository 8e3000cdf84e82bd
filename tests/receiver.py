"""A local webhook receiver for integration tests: records every request, answers as its `answer` says."""

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.probes import wait_for


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    port: int
    # Status for each request, given the requests received so far (this one included).
    answer: Callable[[list[Received]], int] = lambda _: 200
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait(self, count: int, timeout: float = 60.0) -> list[Received]:
        wait_for(lambda: len(self.received) >= count, f"{count} request(s) at port {self.port}", timeout, 0.05)
        return list(self.received)


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            with receiver.lock:
                receiver.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                status = receiver.answer(receiver.received)
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("location", receiver.url("/elsewhere"))
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@contextlib.contextmanager
def receiving(port: int = 0, answer: Callable[[list[Received]], int] | None = None) -> Iterator[Receiver]:
    """A receiver on 127.0.0.1 (a free port unless `port` is given), stopped on exit."""
    receiver = Receiver(port, answer or (lambda _: 200))
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(receiver))
    server.daemon_threads = True
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
