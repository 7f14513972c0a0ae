"""The HTTP side of `serve`: one connection -> a site file, the live-reload client, or the
event stream.

Input: a request on a connection the server accepted, and the `ServeContext` (the hub, the
output folder, the limits). Output: the response. Files are sent exactly as `build` wrote
them, except that HTML responses get the live-reload client (`livereload.js`) injected
before `</body>`, at serve time only, never on disk. Only GET and HEAD are answered, paths
go through `safety.resolve_request`, `Host` and `Origin` through `safety`'s checks, and no
CORS headers are sent.
"""

from __future__ import annotations

import contextlib
import html
import importlib.resources
import json
import logging
import mimetypes
import os
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import parse_qs

from kbgen.serve.reload import (
    PING_INTERVAL_S,
    HubState,
    ReloadHub,
    TabPosition,
    catch_up,
    client_gone,
    follow_builds,
    overlay_payload,
    retry_message,
)
from kbgen.serve.safety import host_allowed, origin_allowed, resolve_request

logger = logging.getLogger(__name__)

EVENTS_URL = "/__kbgen/events"
CLIENT_URL = "/__kbgen/livereload.js"
INTERNAL_PREFIX = "/__kbgen/"

HANDLER_TIMEOUT_S = 30.0  #: socket timeout: an idle or stalled connection cannot pin a thread
#: the request line and headers must have arrived this long after the connection was
#: accepted, however the bytes trickle in (the socket timeout restarts with each byte)
HEADER_DEADLINE_S = 10.0
#: connections answered at once; more get 503 at once instead of a thread each (50 event
#: streams plus a few hundred requests fit)
MAX_CONNECTIONS = 512
REQUEST_WAIT_S = 15.0  #: longest a request waits for a running rebuild (the site stays complete)

CONTENT_TYPES: Mapping[str, str] = MappingProxyType({
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".xml": "application/xml; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".svg": "image/svg+xml",
    ".woff2": "font/woff2",
    ".woff": "font/woff",
    ".wasm": "application/wasm",
    ".webmanifest": "application/manifest+json",
})

FALLBACK_404 = (
    b'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Not found</title>'
    b"</head><body><h1>Not found</h1><p>The site has not been built yet, or has no page here."
    b"</p></body></html>\n"
)


def content_type(path: Path) -> str:
    known = CONTENT_TYPES.get(path.suffix.lower())
    if known:
        return known
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed or "application/octet-stream"


# --- live-reload injection -----------------------------------------------------------------


def inject_client(page: bytes, snippet: bytes) -> bytes:
    """Insert `snippet` before the last `</body>` (or append it): at serve time, never on disk."""
    at = page.lower().rfind(b"</body>")
    return page + snippet if at < 0 else page[:at] + snippet + page[at:]


def client_snippet(state: HubState, server_id: str, served_as: str) -> bytes:
    """The client's `<script>`, telling it its page's epoch, server run and file."""
    attributes = (
        f'data-epoch="{state.epoch}" data-server="{server_id}" '
        f'data-file="{html.escape(served_as, quote=True)}"'
    )
    snippet = f'<script src="{CLIENT_URL}" {attributes} defer></script>'
    if state.failed:  # a tab opened while the error stands shows the overlay at once
        payload = json.dumps(overlay_payload(state.problems), ensure_ascii=False)
        payload = payload.replace("<", "\\u003c")  # no "</script>" can end the block early
        snippet += f'<script type="application/json" id="kbgen-errors">{payload}</script>'
    return snippet.encode("utf-8")


def _load_client_script() -> bytes:
    return importlib.resources.files("kbgen").joinpath("livereload.js").read_bytes()


# --- what every handler shares -------------------------------------------------------------


@dataclass
class ServeContext:
    """Everything a request handler needs, passed in (never class attributes)."""

    hub: ReloadHub
    output_dir: Path  #: replaced when a config change moves the output folder
    allowed_hosts: frozenset[str] | None = None
    server_id: str = field(default_factory=lambda: secrets.token_hex(8))
    ping_interval: float = PING_INTERVAL_S
    request_wait: float = REQUEST_WAIT_S
    client_script: bytes = field(default_factory=_load_client_script)
    stopping: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    header_deadline: float = HEADER_DEADLINE_S
    max_connections: int = MAX_CONNECTIONS
    open_streams: int = 0  #: event streams open now
    active_handlers: int = 0  #: connections being answered now
    requests: int = 0  #: requests answered in total
    refused: int = 0  #: connections answered 503 because max_connections were busy
    #: sockets still reading their request line and headers -> when they must be done
    reading: dict[socket.socket, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def counting(self, name: Literal["open_streams", "active_handlers"]) -> Iterator[None]:
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)
        try:
            yield
        finally:
            with self._lock:
                setattr(self, name, getattr(self, name) - 1)

    def count_request(self) -> None:
        with self._lock:
            self.requests += 1

    def admit(self) -> bool:
        """Count a new connection in, unless `max_connections` are being answered."""
        with self._lock:
            if self.active_handlers >= self.max_connections:
                self.refused += 1
                return False
            self.active_handlers += 1
            return True

    def release(self) -> None:
        with self._lock:
            self.active_handlers -= 1

    def reading_headers(self, sock: socket.socket, reading: bool) -> None:
        with self._lock:
            if reading:
                self.reading[sock] = time.monotonic() + self.header_deadline
            else:
                self.reading.pop(sock, None)

    def overdue(self) -> list[socket.socket]:
        """Sockets past their header deadline (forgotten here: each is cut off once)."""
        now = time.monotonic()
        with self._lock:
            late = [sock for sock, deadline in self.reading.items() if deadline <= now]
            for sock in late:
                del self.reading[sock]
        return late


# --- one connection ------------------------------------------------------------------------


class PreviewHandler(BaseHTTPRequestHandler):
    """One connection: a file from the output folder, the client script, or the event stream.

    HTTP/1.0 (one request per connection): no idle keep-alive sockets pin threads, and the
    browser's per-origin connection budget is spent only on open event streams.
    """

    timeout = HANDLER_TIMEOUT_S

    def __init__(self, *args: Any, context: ServeContext, **kwargs: Any) -> None:
        self.context = context
        super().__init__(*args, **kwargs)

    def version_string(self) -> str:
        return "kbgen-serve"

    def setup(self) -> None:
        super().setup()
        # The server cuts the connection off if the headers are not in by the deadline
        # (PreviewServer.service_actions); a byte at a time cannot extend it.
        self.context.reading_headers(self.connection, True)

    def finish(self) -> None:
        self.context.reading_headers(self.connection, False)
        super().finish()

    # -- request checks

    def parse_request(self) -> bool:
        parsed = super().parse_request()
        self.context.reading_headers(self.connection, False)
        if not parsed:
            return False
        if self.command not in ("GET", "HEAD"):
            self._drain_body()
            self._send_text(405, "only GET and HEAD are allowed\n", {"Allow": "GET, HEAD"})
            return False
        if not host_allowed(self.headers.get("Host"), self.context.allowed_hosts):
            self._send_text(
                403,
                "this preview server only answers to localhost, 127.0.0.1 and [::1] "
                "(DNS-rebinding defence); bind another address with --host on purpose\n",
            )
            return False
        return True

    def _drain_body(self) -> None:
        """Read a small request body so the connection closes cleanly (no RST)."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return
        if 0 < length <= 65536:
            with contextlib.suppress(OSError):
                self.rfile.read(length)

    def do_GET(self) -> None:
        self._respond(head=False)

    def do_HEAD(self) -> None:
        self._respond(head=True)

    # -- routing

    def _respond(self, head: bool) -> None:
        context = self.context
        context.count_request()
        path, _, query = self.path.partition("?")
        path = path.partition("#")[0]
        if path == EVENTS_URL:
            self._serve_events(query, head)
        elif path == CLIENT_URL:
            self._send_bytes(200, context.client_script, CONTENT_TYPES[".js"], head)
        elif path.startswith(INTERNAL_PREFIX):
            self._send_not_found(head, context.hub.state())
        else:
            self._serve_site(path, query, head)

    def _serve_site(self, path: str, query: str, head: bool) -> None:
        context = self.context
        # Never show a site in the middle of a rebuild (bounded: the folder is always complete).
        context.hub.wait_idle(context.request_wait)
        state = context.hub.state()  # read before the file: a page may be newer, never older
        found = resolve_request(context.output_dir, path)
        if found.kind == "file" and found.file is not None:
            self._send_file(200, found.file, found.served_as, state, head)
        elif found.kind == "redirect":
            location = found.location + (f"?{query}" if query else "")
            self._send_text(301, f"moved to {location}\n", {"Location": location}, head)
        elif found.kind == "forbidden":
            self._send_text(403, "outside the site folder\n", head=head)
        elif found.kind == "bad":
            self._send_text(400, "malformed path\n", head=head)
        else:
            self._send_not_found(head, state)

    # -- responses

    def _common_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")

    def _send_bytes(
        self,
        status: int,
        body: bytes,
        ctype: str,
        head: bool,
        extra: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self._common_headers()
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _send_text(
        self, status: int, text: str, extra: dict[str, str] | None = None, head: bool = False
    ) -> None:
        self._send_bytes(status, text.encode("utf-8"), CONTENT_TYPES[".txt"], head, extra)

    def _send_file(
        self, status: int, file: Path, served_as: str, state: HubState, head: bool
    ) -> None:
        ctype = content_type(file)
        try:
            handle = file.open("rb")
        except OSError:  # gone since it was resolved (a rebuild removed it)
            self._send_not_found(head, state)
            return
        with handle:
            if ctype.startswith("text/html"):
                page = inject_client(
                    handle.read(), client_snippet(state, self.context.server_id, served_as)
                )
                self._send_bytes(status, page, ctype, head)
                return
            size = os.fstat(handle.fileno()).st_size
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(size))
            self._common_headers()
            self.end_headers()
            if not head:
                shutil.copyfileobj(handle, self.wfile, 1 << 16)

    def _send_not_found(self, head: bool, state: HubState) -> None:
        found = resolve_request(self.context.output_dir, "/404.html")
        if found.kind == "file" and found.file is not None:
            self._send_file(404, found.file, found.served_as, state, head)
            return
        page = inject_client(FALLBACK_404, client_snippet(state, self.context.server_id, ""))
        self._send_bytes(404, page, CONTENT_TYPES[".html"], head)

    # -- the event stream (its messages and timing: kbgen/serve/reload.py)

    def _serve_events(self, query: str, head: bool) -> None:
        origin = self.headers.get("Origin")
        if not origin_allowed(origin, self.headers.get("Host")):
            self._send_text(403, "cross-origin event streams are refused\n", head=head)
            return
        # Read the state before answering: a client that connects, then sees a build
        # finish, must get that build's event.
        state = self.context.hub.state()
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self._common_headers()
        self.end_headers()
        self.close_connection = True
        if head:
            return
        params = parse_qs(query)
        tab = TabPosition(
            page_epoch=_int_or_none(params.get("epoch", [""])[0]),
            last_event_id=_int_or_none(self.headers.get("Last-Event-ID")),
            page_server=params.get("server", [""])[0],
        )
        with contextlib.suppress(ConnectionError, TimeoutError, OSError), \
                self.context.counting("open_streams"):
            self._pump_events(state, tab)

    def _pump_events(self, state: HubState, tab: TabPosition) -> None:
        context = self.context
        self.wfile.write(retry_message())
        missed, epoch = catch_up(context.hub, state, tab, context.server_id)
        if missed:
            self.wfile.write(missed)
        follow_builds(
            self.wfile.write,
            context.hub,
            epoch,
            ping_interval=context.ping_interval,
            stopping=context.stopping,
            tab_gone=lambda: client_gone(self.connection),
        )

    # -- logging: problems only; one line per request would drown the rebuild messages

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)


def _int_or_none(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return None
