"""`serve`: build, serve the output folder, and show every save in the open browser tabs.

Input: the `serve` command line (config path, host, port, --open, --poll, --no-drafts).
Output: an HTTP server on the output folder until Ctrl-C (then exit code 0), and one line on
the terminal per rebuild (the diagnostics of a failed one).

Threads (ARCHITECTURE.md §7.8), with `ReloadHub` as the only shared state:
- the main thread runs the builder loop: a burst of saves from `kbgen.watch` -> one
  `Builder.build()` -> `hub.publish_*`;
- watchdog's thread only filters and enqueues;
- a `ThreadingHTTPServer` answers every connection on its own daemon thread. A single-threaded
  server deadlocks the reload: the old page's event stream holds the only thread while the
  browser waits for the new page (TESTING.md §e);
- a search thread refreshes the Pagefind index a moment after successful rebuilds, never
  touching a folder a build may be swapping (`SearchRefresher`).

The site is served exactly as `build` writes it. The live-reload client (`livereload.js`) is
injected into HTML responses only, at serve time. It listens to Server-Sent Events on
`/__kbgen/events`: `reload` names the output files that changed (a tab reloads if its page is
among them, and swaps stylesheets in place when only CSS changed); `errors` carries the
diagnostics of a failed build, which the tab shows as an overlay over the last good site.

A dev server is still a server: it binds 127.0.0.1 by default, answers only GET and HEAD,
maps request paths through `resolve_request` (decode once, no NUL/backslash/encoded
separators, normalise, real path inside the output folder), refuses unexpected `Host` headers
(DNS rebinding) and cross-origin event streams, and sends no CORS headers.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import errno
import functools
import html
import importlib.resources
import json
import logging
import mimetypes
import os
import posixpath
import re
import secrets
import select
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
import traceback
import webbrowser
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_address
from pathlib import Path
from typing import Any, Literal, TextIO
from urllib.parse import parse_qs, quote, unquote

from kbgen import search
from kbgen.config import Config, load_config
from kbgen.diagnostics import Diagnostic, error, format_text
from kbgen.incremental import Builder
from kbgen.pipeline import BuildOptions, BuildResult
from kbgen.watch import ChangeKind, Watcher, WatchRoots, classify, describe
from kbgen.write import _pid_alive

logger = logging.getLogger(__name__)

EXIT_OK, EXIT_USAGE = 0, 2

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
LISTEN_BACKLOG = 1024  #: connections the kernel queues while the server accepts (Linux caps
#: it at net.core.somaxconn, 4096 by default)
REQUEST_WAIT_S = 15.0  #: longest a request waits for a running rebuild (the site stays complete)
PING_INTERVAL_S = 15.0  #: event-stream heartbeat (Zola pings its WebSocket every 30 s)
STREAM_CHECK_S = 1.0  #: how often an idle event stream checks for shutdown or a closed client
RETRY_MS = 1000  #: EventSource reconnect delay after the server went away
HISTORY_LENGTH = 256  #: builds whose changed-file lists are kept for reconnecting tabs
OVERLAY_LIMIT = 100  #: diagnostics sent to the overlay; the terminal shows them all
SEARCH_DELAY_S = 1.0  #: re-index search once saves have paused this long
SEARCH_NICENESS = 10  #: the search thread (and Pagefind) yield the CPU to rebuilds
SEARCH_BUNDLE = "pagefind"  #: the folder of the search index, as the templates load it
BATCH_WAIT_S = 0.5  #: the builder loop wakes this often (Ctrl-C, stop requests)
STATE_SAVE_QUIET_S = 3.0  #: seconds without changes before a deferred build state is saved
#: how often an idle `serve` checks that the output folder still holds every file it built
#: (a deleted site or page is rebuilt; ~10 ms for 10,000 files)
OUTPUT_CHECK_S = 3.0

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
#: `%2f` (/), `%5c` (\) and `%00` (NUL) smuggle separators past normalisation: always refused
ENCODED_SEPARATOR = re.compile(r"%(?:2f|5c|00)", re.IGNORECASE)

CONTENT_TYPES = {
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
}

FALLBACK_404 = (
    b'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Not found</title>'
    b"</head><body><h1>Not found</h1><p>The site has not been built yet, or has no page here."
    b"</p></body></html>\n"
)


# --- the hub: builds -> event streams and waiting requests ---------------------------------


@dataclass(frozen=True, slots=True)
class HubState:
    epoch: int  #: builds finished so far, failed ones included; every page carries one
    generation: int  #: successful builds: how often the site on disk was replaced
    building: bool
    failed: bool  #: the last build failed; the site on disk is the last good one
    problems: tuple[Diagnostic, ...]  #: the failed build's diagnostics (else empty)
    closed: bool  #: the server is stopping


class ReloadHub:
    """What the builder tells everyone else: a condition variable around the build state.

    Requests `wait_idle` while a build runs; event streams `wait_newer` than the epoch their
    page was served at, then ask `since(epoch)` which output files changed meanwhile.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._epoch = 0
        self._generation = 0
        self._building = False
        self._failed = False
        self._problems: tuple[Diagnostic, ...] = ()
        self._closed = False
        #: (epoch, output paths changed by that build); failed builds change nothing
        self._history: deque[tuple[int, frozenset[str]]] = deque(maxlen=HISTORY_LENGTH)

    def _state(self) -> HubState:
        return HubState(
            self._epoch,
            self._generation,
            self._building,
            self._failed,
            self._problems,
            self._closed,
        )

    def state(self) -> HubState:
        with self._cond:
            return self._state()

    def begin_build(self) -> None:
        with self._cond:
            self._building = True
            self._cond.notify_all()

    def cancel_build(self) -> None:
        """The build was interrupted (Ctrl-C): nothing changed on disk."""
        with self._cond:
            self._building = False
            self._cond.notify_all()

    def publish_success(self, changed: Iterable[str]) -> HubState:
        with self._cond:
            self._epoch += 1
            self._generation += 1
            self._building = False
            self._failed = False
            self._problems = ()
            self._history.append((self._epoch, frozenset(changed)))
            self._cond.notify_all()
            return self._state()

    def publish_failure(self, problems: Sequence[Diagnostic]) -> HubState:
        with self._cond:
            self._epoch += 1
            self._building = False
            self._failed = True
            self._problems = tuple(problems)
            self._history.append((self._epoch, frozenset()))
            self._cond.notify_all()
            return self._state()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._building = False
            self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait (bounded) until no build runs; False if one still runs after `timeout`."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._building or self._closed, timeout)

    def wait_newer(self, epoch: int, timeout: float) -> HubState:
        with self._cond:
            self._cond.wait_for(lambda: self._epoch > epoch or self._closed, timeout)
            return self._state()

    def since(self, epoch: int) -> tuple[HubState, frozenset[str] | None]:
        """The state now, and the output paths changed after `epoch` (None: unknown, too old)."""
        with self._cond:
            state = self._state()
            if epoch >= self._epoch:
                return state, frozenset()
            recorded = dict(self._history)
            changed: set[str] = set()
            for later in range(max(epoch, 0) + 1, self._epoch + 1):
                if later not in recorded:
                    return state, None
                changed |= recorded[later]
            return state, frozenset(changed)

    def run_if_current(self, generation: int, action: Callable[[], None]) -> bool:
        """Run `action` only while no build runs and the site is still `generation`.

        Holding the lock keeps a new build from starting (and swapping the folder) meanwhile,
        so `action` must be quick: a couple of renames.
        """
        with self._cond:
            if self._building or self._closed or self._generation != generation:
                return False
            action()
            return True


# --- event stream messages ----------------------------------------------------------------


def sse_message(event: str, data: object, event_id: int | None = None) -> bytes:
    """One Server-Sent Event; `data` as one line of JSON."""
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append(f"event: {event}")
    lines.append("data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":")))
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def overlay_payload(problems: Sequence[Diagnostic]) -> dict[str, object]:
    """Errors first, then warnings, at most OVERLAY_LIMIT rows (the terminal shows all)."""
    ordered = [d for d in problems if d.is_error] + [d for d in problems if not d.is_error]
    rows = []
    for problem in ordered[:OVERLAY_LIMIT]:
        row = problem.to_json()
        row["location"] = problem.location()
        rows.append(row)
    return {
        "errors": sum(1 for d in problems if d.is_error),
        "diagnostics": rows,
        "more": max(0, len(ordered) - OVERLAY_LIMIT),
    }


def event_for(state: HubState, changed: frozenset[str] | None) -> bytes:
    """The event a tab at an older epoch needs now: the errors, or what to reload."""
    if state.failed:
        return sse_message("errors", {"epoch": state.epoch, **overlay_payload(state.problems)},
                           state.epoch)
    listed = None if changed is None else sorted(changed)
    return sse_message("reload", {"epoch": state.epoch, "changed": listed}, state.epoch)


# --- request paths -> files ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Resolution:
    kind: Literal["file", "redirect", "missing", "forbidden", "bad"]
    file: Path | None = None  #: for "file": the real path, inside the output folder
    served_as: str = ""  #: for "file": the output-relative path with a leading "/"
    location: str = ""  #: for "redirect"


def resolve_request(root: Path, raw_path: str) -> Resolution:
    """Map a request path (without query) to a file inside `root`, or say why not.

    Decode once; refuse NUL, backslashes and encoded separators; normalise; follow symlinks
    and require the real path inside the real output folder. Hidden names (the `.kbgen-site`
    manifest) are not part of the site. A folder without a trailing slash redirects; a folder
    serves its index.html.
    """
    if not raw_path.startswith("/") or ENCODED_SEPARATOR.search(raw_path):
        return Resolution("bad")
    try:
        decoded = unquote(raw_path, errors="strict")
    except UnicodeDecodeError:
        return Resolution("bad")
    if "\x00" in decoded or "\\" in decoded:
        return Resolution("bad")
    normal = posixpath.normpath(decoded)
    parts = [part for part in normal.split("/") if part]
    if any(part.startswith(".") for part in parts):
        return Resolution("missing")
    try:
        real_root = root.resolve(strict=True)
        real = real_root.joinpath(*parts).resolve(strict=True)
    except (OSError, RuntimeError):  # missing, or a symlink loop
        return Resolution("missing")
    if not real.is_relative_to(real_root):
        return Resolution("forbidden")
    if real.is_dir():
        if not decoded.endswith("/"):
            return Resolution("redirect", location=quote("/".join(["", *parts, ""])))
        index = real / "index.html"
        try:
            real = index.resolve(strict=True)
        except (OSError, RuntimeError):
            return Resolution("missing")
        if not real.is_relative_to(real_root):
            return Resolution("forbidden")
        parts.append("index.html")
    if not real.is_file():
        return Resolution("missing")
    return Resolution("file", real, "/" + "/".join(parts))


def content_type(path: Path) -> str:
    known = CONTENT_TYPES.get(path.suffix.lower())
    if known:
        return known
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed or "application/octet-stream"


def inject_client(page: bytes, snippet: bytes) -> bytes:
    """Insert `snippet` before the last `</body>` (or append it): at serve time, never on disk."""
    at = page.lower().rfind(b"</body>")
    return page + snippet if at < 0 else page[:at] + snippet + page[at:]


def client_snippet(state: HubState, server_id: str, served_as: str) -> bytes:
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


# --- Host and Origin checks (DNS-rebinding defence) ----------------------------------------


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def allowed_hosts(bind_host: str, port: int) -> frozenset[str] | None:
    """`Host` header values accepted; None (no check) when the user bound another address."""
    if not is_loopback(bind_host):
        return None
    names = {*LOOPBACK_NAMES, url_host(bind_host)}
    hosts = {f"{name}:{port}" for name in names}
    if port == 80:
        hosts |= names
    return frozenset(hosts)


def host_allowed(header: str | None, allowed: frozenset[str] | None) -> bool:
    if allowed is None:
        return True
    return header is not None and header.strip().lower() in allowed


def origin_allowed(origin: str | None, host_header: str | None) -> bool:
    """Event streams are same-origin only; no Origin (same-origin GET, curl) is fine."""
    if origin is None:
        return True
    return host_header is not None and origin.lower() == f"http://{host_header.strip().lower()}"


# --- the HTTP side ------------------------------------------------------------------------


def _load_client_script() -> bytes:
    return importlib.resources.files("kbgen").joinpath("livereload.js").read_bytes()


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

    # -- the event stream

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
        with contextlib.suppress(ConnectionError, TimeoutError, OSError), \
                self.context.counting("open_streams"):
            self._pump_events(
                state,
                _int_or_none(params.get("epoch", [""])[0]),
                _int_or_none(self.headers.get("Last-Event-ID")),
                params.get("server", [""])[0],
            )

    def _pump_events(
        self, state: HubState, page_epoch: int | None, last_id: int | None, server: str
    ) -> None:
        context, hub = self.context, self.context.hub
        self.wfile.write(f"retry: {RETRY_MS}\n\n".encode())
        if page_epoch is not None and server != context.server_id:
            # The page came from an earlier run of the server: everything may differ.
            self.wfile.write(sse_message("reload", {"epoch": state.epoch, "changed": None},
                                         state.epoch))
            epoch = state.epoch
        else:
            known = [e for e in (page_epoch, last_id) if e is not None]
            epoch = min(max(known), state.epoch) if known else state.epoch
            if epoch < state.epoch:
                state, changed = hub.since(epoch)
                self.wfile.write(event_for(state, changed))
                epoch = state.epoch
            elif state.failed:  # a tab opened while the error stands
                self.wfile.write(event_for(state, frozenset()))
        next_ping = time.monotonic() + context.ping_interval
        while not context.stopping.is_set():
            wait = max(0.0, min(STREAM_CHECK_S, next_ping - time.monotonic()))
            state = hub.wait_newer(epoch, wait)
            if state.closed:
                return
            if state.epoch > epoch:
                state, changed = hub.since(epoch)
                self.wfile.write(event_for(state, changed))
                epoch = state.epoch
                next_ping = time.monotonic() + context.ping_interval
            elif time.monotonic() >= next_ping:
                self.wfile.write(b": ping\n\n")  # a closed tab shows up as a broken pipe
                next_ping = time.monotonic() + context.ping_interval
            elif client_gone(self.connection):
                return

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


def client_gone(sock: socket.socket) -> bool:
    """True if the peer closed the connection (readable with nothing to read)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


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


# --- search: refresh the Pagefind index beside the builds ----------------------------------


def _link_tree(source: Path, target: Path, keep: Callable[[Path], bool]) -> int:
    """Hard-link (or copy) the files under `source` that `keep` accepts into `target`."""
    count = 0
    for folder, dirnames, filenames in os.walk(source):
        here = Path(folder)
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d != SEARCH_BUNDLE]
        destination = target / here.relative_to(source)
        destination.mkdir(parents=True, exist_ok=True)
        for name in filenames:
            path = here / name
            if name.startswith(".") or not keep(path):
                continue
            try:
                os.link(path, destination / name)
            except OSError:
                shutil.copyfile(path, destination / name)
            count += 1
    return count


#: Runs in the child: kbgen.search.index_site over one folder; exit 3 with the message if
#: Pagefind is missing or fails.
_INDEX_CHILD = (
    "import sys\n"
    "from pathlib import Path\n"
    "from kbgen.search import SearchIndexError, index_site\n"
    "try:\n"
    "    index_site(Path(sys.argv[1]))\n"
    "except SearchIndexError as exc:\n"
    "    sys.exit(f'{exc}')\n"
)


def index_in_subprocess(site: Path, should_stop: Callable[[], bool]) -> bool:
    """Index `site` with Pagefind in a child process group; False if stopped midway.

    A process, not a thread: the index can be abandoned the moment a rebuild starts (the
    group, Pagefind included, is killed), no Pagefind outlives `serve`, and the bundle
    post-processing never competes with the builder for the GIL.
    """
    package_parent = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [package_parent, os.environ.get("PYTHONPATH")])
    )}
    child = subprocess.Popen(
        [sys.executable, "-c", _INDEX_CHILD, str(site)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env=env, start_new_session=True,
    )
    try:
        while True:
            try:
                _, problem = child.communicate(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                if should_stop():
                    return False
    finally:
        if child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            child.wait()
    if child.returncode != 0:
        raise search.SearchIndexError(problem.decode("utf-8", "replace").strip()[-2000:])
    return True


class SearchRefresher:
    """Keeps `<output>/pagefind/` current without slowing reloads or racing the builds.

    serve builds without search, and a rebuild that stages the whole site swaps the index
    away. Right after every rebuild the last index is put back (a few hard links), so search
    keeps working; it may lag behind the newest pages for a moment. Once saves have paused for
    SEARCH_DELAY_S, the HTML files are hard-linked into a private snapshot and Pagefind indexes
    that (never the output folder, which the next build may change mid-run), in a child
    process at low priority that is killed as soon as a rebuild starts. Installing is two
    renames while `ReloadHub.run_if_current` holds builds off, and only if no build replaced
    the site meanwhile.
    """

    def __init__(
        self,
        hub: ReloadHub,
        work_dir: Path,
        *,
        delay: float = SEARCH_DELAY_S,
        index: Callable[[Path, Callable[[], bool]], bool] = index_in_subprocess,
        report: Callable[[str], None] = print,
    ) -> None:
        self.hub = hub
        self.work_dir = work_dir
        self.delay = delay
        self._index = index
        self._report = report
        self._cond = threading.Condition()
        self._latest: tuple[int, Path] | None = None  #: the newest site: (generation, folder)
        self._install_due = False  #: put the last index back into the newest site
        self._reindex_due = False  #: the newest site has pages the last index lacks
        self._reindex_after = 0.0  #: monotonic time the re-index may start
        self._closed = False
        self._master: Path | None = None  #: work_dir/snapshot-N/pagefind, the last index
        self._serial = 0
        self._reported: str | None = None
        self._indexed = 0  #: the site generation the last index was made of
        #: (site generation, generation its index was made of) of the last install
        self.installed: tuple[int, int] | None = None
        self._thread = threading.Thread(target=self._run, name="kbgen-search", daemon=True)
        self._thread.start()

    def site_built(self, generation: int, output_dir: Path, pages_changed: bool) -> None:
        with self._cond:
            self._latest = (generation, output_dir)
            self._install_due = self._master is not None
            if pages_changed or self._master is None:
                self._reindex_due = True
                self._reindex_after = time.monotonic() + self.delay
            self._cond.notify_all()

    def close(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)
        shutil.rmtree(self.work_dir, ignore_errors=True)

    def _next_job(self) -> tuple[bool, int, Path] | None:
        """(re-index?, generation, folder) once something is due; None when closing."""
        with self._cond:
            while not self._closed:
                if self._latest is not None and self._install_due:
                    self._install_due = False
                    return (False, *self._latest)
                if self._latest is not None and self._reindex_due:
                    remaining = self._reindex_after - time.monotonic()
                    if remaining <= 0 and self.hub.state().building:
                        self._cond.wait(0.2)  # never index a site that is being replaced
                        continue
                    if remaining <= 0:
                        self._reindex_due = False
                        return (True, *self._latest)
                    self._cond.wait(remaining)
                    continue
                self._cond.wait()
            return None

    def _run(self) -> None:
        # On Linux a nice value belongs to a thread and is inherited by the processes it
        # starts: Pagefind then only gets the CPU that rebuilds leave over.
        with contextlib.suppress(AttributeError, OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), SEARCH_NICENESS)
        while (job := self._next_job()) is not None:
            reindex, generation, output_dir = job
            try:
                if reindex and not self._reindex(generation, output_dir):
                    with self._cond:  # a rebuild came first: index the newest site later
                        self._reindex_due = True
                    continue
                self._install(generation, output_dir)
            except search.SearchIndexError as exc:
                self._report_once(f"warning: search index not refreshed: {exc}")
            except OSError as exc:
                if self.hub.state().generation == generation:
                    self._report_once(f"warning: search index not refreshed: {exc}")

    def _fresh_dir(self, prefix: str) -> Path:
        self._serial += 1
        path = self.work_dir / f"{prefix}-{self._serial}"
        shutil.rmtree(path, ignore_errors=True)
        return path

    def _superseded(self, generation: int) -> bool:
        """A build started or finished since `generation`, or serve is stopping."""
        state = self.hub.state()
        return state.building or state.generation != generation or self._closed

    def _reindex(self, generation: int, output_dir: Path) -> bool:
        if self._superseded(generation):
            return False
        snapshot = self._fresh_dir("snapshot")
        _link_tree(output_dir, snapshot, lambda path: path.suffix == ".html")
        done = not self._superseded(generation) and self._index(
            snapshot, lambda: self._superseded(generation)
        )
        if not done or self.hub.state().generation != generation:
            shutil.rmtree(snapshot, ignore_errors=True)
            return False
        with self._cond:
            old, self._master = self._master, snapshot / SEARCH_BUNDLE
        self._indexed = generation
        if old is not None:
            shutil.rmtree(old.parent, ignore_errors=True)
        return True

    def _install(self, generation: int, output_dir: Path) -> None:
        if self._master is None:
            return
        staged = self._fresh_dir("install")
        _link_tree(self._master, staged, lambda path: True)
        target = output_dir / SEARCH_BUNDLE
        aside = self._fresh_dir("replaced")

        def swap() -> None:
            if target.exists() or target.is_symlink():
                os.rename(target, aside)
            os.rename(staged, target)

        if self.hub.run_if_current(generation, swap):
            self.installed = (generation, self._indexed)
        shutil.rmtree(staged, ignore_errors=True)
        shutil.rmtree(aside, ignore_errors=True)

    def _report_once(self, message: str) -> None:
        if message != self._reported:
            self._reported = message
            self._report(message)


SEARCH_WORK_PREFIX = "serve-search-"


def search_work_dir(config: Config) -> Path:
    """Where the search thread works: the cache folder if renames reach the output from there
    (same file system), else beside the output folder. Leftovers of killed runs are removed."""
    parent = config.output_dir.parent
    folder, prefix = parent, f".{config.output_dir.name}.{SEARCH_WORK_PREFIX}"
    with contextlib.suppress(OSError):
        config.cache_dir.mkdir(parents=True, exist_ok=True)
        if config.cache_dir.stat().st_dev == parent.stat().st_dev:
            folder, prefix = config.cache_dir, SEARCH_WORK_PREFIX
    _remove_leftovers(folder, prefix)
    return folder / f"{prefix}{os.getpid()}"


def _remove_leftovers(folder: Path, prefix: str) -> None:
    with contextlib.suppress(OSError):
        for candidate in folder.iterdir():
            pid = candidate.name[len(prefix):]
            if candidate.name.startswith(prefix) and pid.isdigit() and not _pid_alive(int(pid)):
                shutil.rmtree(candidate, ignore_errors=True)


# --- the session: build loop + server + watcher --------------------------------------------


@dataclass(frozen=True, slots=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    open_browser: bool = False
    poll: bool = False
    drafts: bool = True
    quiet_period: float = 0.1  #: debounce for bursts of saves
    ping_interval: float = PING_INTERVAL_S
    request_wait: float = REQUEST_WAIT_S
    search_delay: float = SEARCH_DELAY_S
    today: dt.date | None = None  #: fixed for tests; None = the real date


class ServeStartError(Exception):
    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def internal_error(exc: BaseException) -> Diagnostic:
    return error(
        "kbgen",
        None,
        None,
        f"internal error while building: {type(exc).__name__}: {exc}",
        "this is a bug in kbgen, not in your content; the terminal shows the traceback",
    )


class PreviewSession:
    """One `serve` run: the builder loop, the HTTP server, the watcher and the search thread."""

    def __init__(
        self,
        config_path: Path,
        options: ServeOptions,
        out: TextIO | None = None,
        err: TextIO | None = None,
    ) -> None:
        self.config_path = config_path
        self.options = options
        self._out = out or sys.stdout
        self._err = err or sys.stderr
        self.hub = ReloadHub()
        self.builder = Builder(
            config_path,
            BuildOptions(
                drafts=options.drafts, search=False, today=options.today, defer_state=True
            ),
        )
        self.config: Config | None = None
        self.context: ServeContext | None = None
        self.server: ServerThread | None = None
        self.watcher: Watcher | None = None
        self.search: SearchRefresher | None = None
        self.url = ""
        self.last_result: BuildResult | None = None
        self._shown_warnings: frozenset[Diagnostic] = frozenset()

    def say(self, text: str, *, problem: bool = False) -> None:
        print(text, file=self._err if problem else self._out, flush=True)

    # -- start and stop

    def start(self) -> str:
        """Bind, watch, build once; returns the URL. Raises ServeStartError for user mistakes."""
        config, problems = load_config(self.config_path)
        if config is None:
            raise ServeStartError(format_text(problems))
        self.config = config
        options = self.options
        self.context = ServeContext(
            self.hub,
            config.output_dir,
            ping_interval=options.ping_interval,
            request_wait=options.request_wait,
        )
        self.hub.begin_build()  # requests that arrive before the first build wait for it
        self.server = self._bind(options.host, options.port, self.context)
        if not is_loopback(options.host):
            self.say(
                f"warning: serving on {options.host}: anyone who can reach this address can "
                "read the site, and the Host-header check (DNS-rebinding defence) is off",
                problem=True,
            )
        self.watcher = Watcher(
            WatchRoots.from_config(config), poll=options.poll, quiet=options.quiet_period
        )
        notice = self.watcher.start()
        if notice:
            self.say(notice, problem=True)
        if config.search:
            self.search = SearchRefresher(
                self.hub, search_work_dir(config), delay=options.search_delay,
                report=functools.partial(self.say, problem=True),
            )
        self.server.start()
        self.url = self.server.url
        self._rebuild(None, "first build")
        self.builder.save_state()  # later states wait for a pause (see run)
        drafts = "drafts shown" if options.drafts else "drafts hidden"
        watching = "polling" if self.watcher.poll else "watching"
        self.say(f"Serving {self.url} ({drafts}; {watching} for changes; Ctrl-C to stop)")
        if options.open_browser:
            threading.Thread(target=webbrowser.open, args=(self.url,), daemon=True).start()
        return self.url

    @staticmethod
    def _bind(host: str, port: int, context: ServeContext) -> ServerThread:
        try:
            return ServerThread(host, port, context)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ServeStartError(
                    f"error: cannot serve on {url_host(host)}:{port}: the port is already in "
                    "use\n  hint: stop the other server, or choose another port "
                    "(--port 0 picks a free one)"
                ) from None
            raise ServeStartError(
                f"error: cannot serve on {url_host(host)}:{port}: {exc.strerror or exc}\n"
                "  hint: check --host (the default, 127.0.0.1, is this machine only) "
                "and --port"
            ) from None

    def close(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        self.builder.save_state()  # the next `serve` or `build` starts warm
        if self.server is not None:
            self.server.stop()
        else:
            self.hub.close()
        if self.search is not None:
            self.search.close()

    # -- the builder loop

    def run(self, stop: threading.Event | None = None) -> None:
        """Rebuild after every burst of saves until `stop` is set (or Ctrl-C)."""
        assert self.watcher is not None
        if self.last_result is not None and self.last_result.mode == "unchanged":
            # A warm start skipped loading and resolving the pages; do it now, while the
            # writer reads the page, so their first save costs what the later ones do.
            self._rebuild(None, "warm-up", announce=False, warm_up=True)
        quiet_since = output_checked = time.monotonic()
        unchecked = False  #: rebuilds since the last full check relied on the watcher alone
        while stop is None or not stop.is_set():
            changed = self.watcher.next_batch(BATCH_WAIT_S)
            if changed:
                self.rebuild(changed)
                quiet_since = time.monotonic()
                unchecked = True
                continue
            if time.monotonic() - output_checked >= OUTPUT_CHECK_S:
                # The watcher ignores the output folder, so a deleted site or page is found
                # here; only after a good build (a failing one could not restore it anyway).
                output_checked = time.monotonic()
                if self._output_damaged():
                    self._rebuild(None, "files deleted from the output folder")
                    unchecked = False
                    continue
            if time.monotonic() - quiet_since >= STATE_SAVE_QUIET_S:
                # When the writer pauses: a full check catches any change the watcher missed
                # (an overflowing inotify queue, a network drive), and the state is saved
                # (at 10,000 pages, writing it takes longer than the rebuild it describes).
                if unchecked and self.last_result is not None and self.last_result.ok:
                    self._rebuild(None, "a full check after a pause", announce=False)
                unchecked = False
                self.builder.save_state()

    def _output_damaged(self) -> bool:
        result, context = self.last_result, self.context
        if result is None or not result.ok or context is None:
            return False
        return self.builder.output_damaged(context.output_dir)

    def rebuild(self, changed: set[Path]) -> BuildResult | None:
        assert self.config is not None
        root = self.config.root
        if self.watcher is not None and any(
            classify(path, self.watcher.roots) is ChangeKind.CONFIG for path in changed
        ):
            self._reload_config()
        return self._rebuild(changed, describe(changed, root) + " changed")

    def _reload_config(self) -> None:
        """A valid new config may move folders: follow it (an invalid one shows as errors)."""
        config, _ = load_config(self.config_path)
        if config is None:
            return
        self.config = config
        if self.watcher is not None:
            self.watcher.retarget(WatchRoots.from_config(config))

    def _rebuild(
        self,
        changed: set[Path] | None,
        trigger: str,
        *,
        announce: bool = True,
        warm_up: bool = False,
    ) -> BuildResult | None:
        """Build and tell the browsers; `announce=False`: say nothing if nothing changed.

        `warm_up`: load and resolve after a warm start. It trusts that nothing changed since
        the first build a moment ago, so it writes nothing and requests need not wait.
        """
        if not warm_up:
            self.hub.begin_build()
        started = time.perf_counter()
        try:
            # The watcher reports every change, so the builder need not look for others
            # (a full check runs after each pause, see run).
            if warm_up:
                result = self.builder.warm_up()
            elif changed is not None:
                result = self.builder.build(changed=changed, trust_changed=True)
            else:
                result = self.builder.build()
        except Exception as exc:  # a bug: keep serving, show it everywhere
            traceback.print_exc(file=self._err)
            self.hub.publish_failure((internal_error(exc),))
            self.say(f"Build crashed ({trigger}); still serving the last good site.",
                     problem=True)
            return None
        except BaseException:
            self.hub.cancel_build()
            raise
        elapsed = time.perf_counter() - started
        self.last_result = result
        written = result.written
        quiet = written is not None and not (written.changed or written.removed)
        if warm_up and result.ok and quiet:
            return result  # nothing to tell anyone
        if result.ok:
            self._publish_success(result, elapsed, trigger, announce)
        else:
            self._publish_failure(result, trigger)
        return result

    def _publish_success(
        self, result: BuildResult, elapsed: float, trigger: str, announce: bool = True
    ) -> None:
        assert self.context is not None
        written = result.written
        changed = (*written.changed, *written.removed) if written else ()
        if result.output_dir is not None:
            self.context.output_dir = result.output_dir
        state = self.hub.publish_success("/" + rel for rel in changed)
        self._show_warnings(result.diagnostics)
        files = f"{len(changed)} file{'s' if len(changed) != 1 else ''} changed"
        if 0 < len(changed) <= 3:
            files += ": " + ", ".join(changed)
        if announce or changed:
            self.say(f"Built {result.pages} pages in {elapsed:.2f} s ({trigger}); {files}")
        if self.search is not None and self.config is not None and self.config.search:
            self.search.site_built(
                state.generation,
                self.context.output_dir,
                pages_changed=any(rel.endswith(".html") for rel in changed),
            )

    def _publish_failure(self, result: BuildResult, trigger: str) -> None:
        self.hub.publish_failure(result.diagnostics)
        errors = [d for d in result.diagnostics if d.is_error]
        self.say(format_text(errors + self._new_warnings(result.diagnostics)), problem=True)
        self.say(
            f"Build failed ({trigger}): {result.errors} error(s); still serving the last good "
            "site. Open tabs show the errors until you fix them.",
            problem=True,
        )

    def _new_warnings(self, diagnostics: Sequence[Diagnostic]) -> list[Diagnostic]:
        """Warnings not shown after the previous build (a 10,000-page site would repeat all)."""
        warnings = [d for d in diagnostics if not d.is_error]
        fresh = [d for d in warnings if d not in self._shown_warnings]
        self._shown_warnings = frozenset(warnings)
        return fresh

    def _show_warnings(self, diagnostics: Sequence[Diagnostic]) -> None:
        fresh = self._new_warnings(diagnostics)
        if fresh:
            self.say(format_text(fresh), problem=True)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_serve(args: argparse.Namespace) -> int:
    """`kbgen serve`: returns the exit code (0 after Ctrl-C or SIGTERM)."""
    options = ServeOptions(
        host=args.host,
        port=args.port,
        open_browser=args.open,
        poll=args.poll,
        drafts=not args.no_drafts,
    )
    session = PreviewSession(args.config, options)
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        # `kill` and a closed terminal stop it like Ctrl-C: cleanly, with the state saved.
        for number in (signal.SIGTERM, signal.SIGHUP):
            previous[number] = signal.signal(number, _interrupt)
    try:
        try:
            session.start()
        except ServeStartError as exc:
            session.say(exc.message, problem=True)
            return exc.code
        session.run()
    except KeyboardInterrupt:
        pass
    finally:
        with contextlib.suppress(KeyboardInterrupt):
            session.close()
        for number, handler in previous.items():
            signal.signal(number, handler)
    session.say("Stopped.")
    return EXIT_OK
