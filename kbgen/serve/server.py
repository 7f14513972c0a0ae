"""The preview HTTP server: accept connections, answer each on its own thread, stop cleanly.

Input: the address to bind and the `ServeContext` its handlers share. Output: a running
`ThreadingHTTPServer` (`ServerThread.start`), its URL, and `stop()`, which ends every handler
within seconds.

Every connection gets its own daemon thread. A single-threaded server would deadlock the
live reload: the old page's open event stream holds the only thread while the browser waits
for the new page. So that threads stay bounded, at most `max_connections` are answered at
once (the rest get a short 503), and a client that trickles its headers is cut off at a
deadline however slowly its bytes arrive.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import socket
import socketserver
import sys
import threading
import time
from http.server import ThreadingHTTPServer
from typing import Any

from kbgen.serve.handler import PreviewHandler, ServeContext
from kbgen.serve.safety import allowed_hosts, is_loopback, url_host

logger = logging.getLogger(__name__)

LISTEN_BACKLOG = 1024  #: connections the kernel queues while the server accepts (Linux caps
#: it at net.core.somaxconn, 4096 by default)


class PreviewServer(ThreadingHTTPServer):
    daemon_threads = True  #: a stuck connection never keeps the process alive
    block_on_close = False  #: `close()` waits (bounded) on its own counters instead
    request_queue_size = LISTEN_BACKLOG  #: a burst of clients must not overflow the backlog

    def __init__(self, address: tuple[str, int], context: ServeContext) -> None:
        self.context = context
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, functools.partial(PreviewHandler, context=context))

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls getfqdn(), a DNS lookup that can hang without network.
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        # Counted here, on the accepting thread, so a burst cannot start more threads than
        # the bound before the first of them has counted itself.
        if not self.context.admit():
            _refuse_busy(request)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.context.release()  # no thread was started
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.context.release()

    _reaped_at = 0.0  #: when service_actions last looked for overdue connections

    def service_actions(self) -> None:
        """Runs in serve_forever's loop (after every accept, and each poll interval): cut off
        connections whose request line and headers did not arrive in time; their handler
        then ends. At most every 0.1 s: under load it would otherwise run per connection."""
        now = time.monotonic()
        if now - self._reaped_at < 0.1:
            return
        self._reaped_at = now
        for sock in self.context.overdue():
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return  # the browser went away mid-response: normal for a dev server
        logger.exception("kbgen serve: error while answering %s", client_address)


def _refuse_busy(sock: socket.socket) -> None:
    """A short 503 written without blocking the accepting thread (dropped if it cannot)."""
    body = b"the preview server is answering too many connections; try again\n"
    head = (
        "HTTP/1.0 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    with contextlib.suppress(OSError):
        sock.setblocking(False)
        sock.send(head.encode() + body)


class ServerThread:
    """The HTTP server on its own thread; `stop()` ends every handler within seconds."""

    def __init__(self, host: str, port: int, context: ServeContext) -> None:
        self.context = context
        self.host = host
        self.server = PreviewServer((host, port), context)
        self.port = int(self.server.server_address[1])
        if context.allowed_hosts is None and is_loopback(host):
            context.allowed_hosts = allowed_hosts(host, self.port)
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
            name="kbgen-http", daemon=True,
        )

    @property
    def url(self) -> str:
        host = self.host
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        return f"http://{url_host(host)}:{self.port}/"

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop accepting, end the event streams, and wait for handlers; True if all ended."""
        self.context.stopping.set()
        self.context.hub.close()
        if self._thread.is_alive():
            self.server.shutdown()
        self.server.server_close()
        deadline = time.monotonic() + timeout
        while self.context.active_handlers and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.context.active_handlers == 0
