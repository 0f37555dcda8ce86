"""What the HTTP fakes (LND REST, OpenAI) share: the threaded server, its lifecycle, and the
standalone loop. Each fake adds its own state and request handler.

    class FakeThing(HttpFake):
        def __init__(self, host="127.0.0.1", port=0):
            self.listen(host, port, _Handler, "fake-thing")

The handler reaches the fake as `self.server.fake`.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import sys
import threading
from http.server import ThreadingHTTPServer
from typing import Any, Self


class TrackingHTTPServer(ThreadingHTTPServer):
    """A threaded server that knows its open connections, so stopping it drops keep-alive
    connections too: a stopped fake really is gone (clients see a refused or reset
    connection, as with a node that went down)."""

    daemon_threads = True

    def __init__(self, addr: tuple[str, int], handler: type, fake: Any) -> None:
        self.fake = fake
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(addr, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def close_all(self) -> None:
        self.server_close()
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class HttpFake:
    """Lifecycle: start() serves from a daemon thread, stop() shuts it down (and wakes any
    answer waiting in wait()); a context manager does both."""

    _httpd: TrackingHTTPServer
    _thread: threading.Thread | None
    _stopping: threading.Event
    _thread_name: str

    def listen(self, host: str, port: int, handler: type, thread_name: str) -> None:
        self._stopping = threading.Event()
        self._httpd = TrackingHTTPServer((host, port), handler, self)
        self._thread = None
        self._thread_name = thread_name

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def start(self) -> Self:
        # a short poll interval keeps stop() (and so each test's teardown) fast
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name=self._thread_name, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:  # shutdown() would block if serve_forever never ran
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.close_all()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def wait(self, seconds: float) -> bool:
        """Sleep unless the server stops first; True if it is stopping."""
        return self._stopping.wait(seconds)


def serve_until_stopped(fake: HttpFake, banner: str) -> None:
    """Run a fake in the foreground (python -m tests.fakes.<name>) until Ctrl-C or
    `kill PID`, then exit cleanly."""
    signal.signal(signal.SIGTERM, _interrupt)
    print(banner, flush=True)
    try:
        fake.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()
    sys.exit(0)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
