"""kbgen/serve/: a real server on port 0, real files, raw HTTP, a real event-stream client.

The helpers here (`raw_request`, `EventStream`, `running_session`) are shared with
test_serve_load.py and tests/browser/test_livereload.py.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import MINIMAL_CONFIG, REPO, TODAY, article, run_build, snapshot

import kbgen.serve.loop
from kbgen.diagnostics import Diagnostic, error, warning
from kbgen.incremental import Builder
from kbgen.pipeline import BuildOptions
from kbgen.serve.command import PreviewSession, ServeOptions, ServeStartError
from kbgen.serve.handler import CLIENT_URL, EVENTS_URL, ServeContext, inject_client
from kbgen.serve.reload import ReloadHub, overlay_payload
from kbgen.serve.safety import (
    Resolution,
    allowed_hosts,
    host_allowed,
    origin_allowed,
    resolve_request,
)
from kbgen.serve.search_refresh import SearchRefresher, index_in_subprocess
from kbgen.serve.server import PreviewServer, ServerThread

MECH = "status: established"
TIMEOUT = 10.0  # every wait in these tests is bounded by this


# --- helpers -------------------------------------------------------------------------------


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def raw_request(port: int, target: str, *, method: str = "GET", host: str | None = None,
                headers: dict[str, str] | None = None, body: bytes = b"",
                timeout: float = TIMEOUT) -> RawResponse:
    """Send exactly `target` (no client-side normalisation, NUL allowed) and read the reply."""
    lines = [f"{method} {target} HTTP/1.1"]
    if host != "":
        lines.append(f"Host: {host or f'127.0.0.1:{port}'}")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    data = b"".join(chunks)
    head, _, payload = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parsed = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        parsed[name.strip().lower()] = value.strip()
    return RawResponse(int(status_line.split()[1]), parsed, payload)


@dataclass
class Event:
    name: str
    data: dict[str, object]
    id: str | None


class EventStream:
    """A minimal Server-Sent Events client on a raw socket (every read is bounded)."""

    def __init__(self, port: int, target: str = EVENTS_URL,
                 headers: dict[str, str] | None = None, timeout: float = TIMEOUT) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        lines = [f"GET {target} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Accept: text/event-stream"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.file = self.sock.makefile("rb")
        self.status = int(self.file.readline().split()[1])
        self.headers: dict[str, str] = {}
        while (line := self.file.readline().decode().strip()):
            name, _, value = line.partition(":")
            self.headers[name.lower()] = value.strip()
        self.comments: list[str] = []

    def next_event(self, timeout: float = TIMEOUT) -> Event:
        self.sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        name, data, event_id = "message", [], None
        while time.monotonic() < deadline:
            raw = self.file.readline()
            if not raw:
                raise ConnectionError("stream closed")
            line = raw.decode().rstrip("\n")
            if line.startswith(":"):
                self.comments.append(line)
            elif line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
            elif line.startswith("id:"):
                event_id = line[3:].strip()
            elif line == "" and data:
                return Event(name, json.loads("\n".join(data)), event_id)
        raise TimeoutError("no event in time")

    def expect_nothing(self, seconds: float) -> None:
        with pytest.raises((TimeoutError, socket.timeout)):
            self.next_event(timeout=seconds)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.file.close()
            self.sock.close()


def wait_until(condition: Callable[[], bool], timeout: float = TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


@dataclass
class Running:
    session: PreviewSession
    out: io.StringIO
    err: io.StringIO
    port: int
    root: Path
    streams: list[EventStream] = field(default_factory=list)

    def stream(self, target: str = EVENTS_URL, **kwargs: object) -> EventStream:
        opened = EventStream(self.port, target, **kwargs)  # type: ignore[arg-type]
        self.streams.append(opened)
        return opened

    def get(self, target: str, **kwargs: object) -> RawResponse:
        return raw_request(self.port, target, **kwargs)  # type: ignore[arg-type]

    def write(self, rel: str, text: str) -> None:
        (self.root / rel).write_text(text, "utf-8")


@contextlib.contextmanager
def running_session(root: Path, **options: object) -> Iterator[Running]:
    """A full `serve` (watcher, builder loop, server) in this process, on a free port."""
    settings: dict[str, object] = {"port": 0, "today": TODAY, "quiet_period": 0.05}
    settings.update(options)
    out, err = io.StringIO(), io.StringIO()
    session = PreviewSession(root / "config.yaml", ServeOptions(**settings),  # type: ignore[arg-type]
                             out=out, err=err)
    session.start()
    loop = threading.Thread(target=session.run, daemon=True)
    loop.start()
    assert session.server is not None
    running = Running(session, out, err, session.server.port, root)
    try:
        yield running
    finally:
        for opened in running.streams:
            opened.close()
        session.stop_loop()  # wakes the loop: no waiting out its idle timeout
        loop.join(TIMEOUT)
        session.close()


# --- path mapping (pure) -------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """An output folder with files, a folder, and symlinks inside and out."""
    out = tmp_path / "project" / "site"
    (out / "sub").mkdir(parents=True)
    (out / "index.html").write_text("<html><body><p>home</p></body></html>", "utf-8")
    (out / "sub/index.html").write_text("<html><body>sub</body></html>", "utf-8")
    (out / "404.html").write_text("<html><body><h1>Page not found</h1></body></html>", "utf-8")
    (out / "empty").mkdir()
    (out / "style.css").write_text("body{color:red}", "utf-8")
    (out / "data.bin").write_bytes(bytes(range(256)) * 300)
    (out / "space name.txt").write_text("spaced", "utf-8")
    (out / ".kbgen-site").write_text('{"files": {}}', "utf-8")
    (tmp_path / "project/config.yaml").write_text("SECRET-CONFIG", "utf-8")
    (tmp_path / "project/content").mkdir()
    (tmp_path / "project/content/a.md").write_text("SECRET-SOURCE", "utf-8")
    (tmp_path / "secret.txt").write_text("SECRET-OUTSIDE", "utf-8")
    os.symlink(tmp_path / "secret.txt", out / "link.txt")
    os.symlink(tmp_path / "project", out / "linkdir")
    os.symlink(out / "style.css", out / "alias.css")  # a link that stays inside is fine
    os.symlink(tmp_path / "secret.txt", out / "sub" / "index.html.bak")
    return out


@pytest.mark.parametrize(("path", "kind", "served_as"), [
    ("/", "file", "/index.html"),
    ("/index.html", "file", "/index.html"),
    ("/sub/", "file", "/sub/index.html"),
    ("/sub/./index.html", "file", "/sub/index.html"),
    ("/sub/../style.css", "file", "/style.css"),  # normalised, still inside
    ("/space%20name.txt", "file", "/space name.txt"),
    ("/alias.css", "file", "/alias.css"),
])
def test_resolve_request_serves_files_inside(tree: Path, path: str, kind: str,
                                             served_as: str) -> None:
    found = resolve_request(tree, path)
    assert (found.kind, found.served_as) == (kind, served_as)
    assert found.file is not None and found.file.is_relative_to(tree.resolve())


@pytest.mark.parametrize(("path", "kind"), [
    ("/sub", "redirect"),
    ("/empty/", "missing"),
    ("/nope.html", "missing"),
    ("/../secret.txt", "missing"),  # normalised to /secret.txt, which the site lacks
    ("/../../../../etc/passwd", "missing"),
    ("/%2e%2e/secret.txt", "missing"),
    ("/%2e%2e/%2e%2e/secret.txt", "missing"),
    ("//etc/passwd", "missing"),
    ("/etc/passwd", "missing"),
    ("/%252e%252e/secret.txt", "missing"),  # decoded once: a literal '%2e%2e' folder
    ("/.kbgen-site", "missing"),
    ("/sub/.hidden", "missing"),
    ("/..%2fsecret.txt", "bad"),
    ("/%2e%2e%2Fsecret.txt", "bad"),
    ("/..%5csecret.txt", "bad"),
    ("/..\\secret.txt", "bad"),
    ("/index.html%00.css", "bad"),
    ("/index.html\x00", "bad"),
    ("/%ff%fe", "bad"),  # not UTF-8
    ("secret.txt", "bad"),
    ("http://127.0.0.1/../secret.txt", "bad"),
    ("/link.txt", "forbidden"),
    ("/linkdir/config.yaml", "forbidden"),
    ("/linkdir/content/a.md", "forbidden"),
    ("/linkdir/", "forbidden"),
    ("/sub/index.html.bak", "forbidden"),
])
def test_resolve_request_refuses_escapes(tree: Path, path: str, kind: str) -> None:
    assert resolve_request(tree, path).kind == kind


def test_resolve_request_redirects_folders_to_a_trailing_slash(tree: Path) -> None:
    assert resolve_request(tree, "/sub") == Resolution("redirect", location="/sub/")


def test_missing_output_folder_is_missing_not_an_error(tmp_path: Path) -> None:
    assert resolve_request(tmp_path / "never-built", "/").kind == "missing"


def test_inject_client_goes_before_the_last_body_end_tag() -> None:
    page = b"<html><body><pre>&lt;/body&gt;</pre></BODY></html>"
    assert inject_client(page, b"<s>") == b"<html><body><pre>&lt;/body&gt;</pre><s></BODY></html>"
    assert inject_client(b"<p>fragment", b"<s>") == b"<p>fragment<s>"


def test_host_and_origin_checks() -> None:
    allowed = allowed_hosts("127.0.0.1", 8123)
    assert allowed is not None
    for good in ("127.0.0.1:8123", "localhost:8123", "LOCALHOST:8123", "[::1]:8123"):
        assert host_allowed(good, allowed), good
    for bad in ("evil.example:8123", "127.0.0.1:80", "localhost", "127.0.0.1.nip.io:8123",
                None, ""):
        assert not host_allowed(bad, allowed), bad
    assert allowed_hosts("0.0.0.0", 8123) is None  # bound on purpose: no check, and a warning
    assert allowed_hosts("::1", 8123) is not None
    assert origin_allowed(None, "127.0.0.1:8123")
    assert origin_allowed("http://127.0.0.1:8123", "127.0.0.1:8123")
    assert not origin_allowed("http://evil.example", "127.0.0.1:8123")
    assert not origin_allowed("null", "127.0.0.1:8123")


# --- the hub --------------------------------------------------------------------------------


def test_hub_reports_changes_since_an_epoch_and_forgets_old_ones() -> None:
    hub = ReloadHub()
    hub.publish_success(["/a.html"])
    hub.publish_failure([error("content/x.md", 3, 1, "bad")])
    hub.publish_success(["/b.html", "/s.css"])
    state, changed = hub.since(1)
    assert state.epoch == 3 and not state.failed
    assert changed == {"/b.html", "/s.css"}
    assert hub.since(0)[1] == {"/a.html", "/b.html", "/s.css"}
    assert hub.since(3)[1] == frozenset()
    for _ in range(300):
        hub.publish_success([])
    assert hub.since(1)[1] is None  # too old to know: the tab reloads everything


def test_overlay_payload_puts_errors_first_and_caps_rows() -> None:
    problems = [warning("content/w.md", 1, 1, "warn")] + [
        error(f"content/e{i}.md", i, 2, "broken", "fix it") for i in range(150)
    ]
    payload = overlay_payload(problems)
    rows = payload["diagnostics"]
    assert isinstance(rows, list) and len(rows) == 100
    assert rows[0]["location"] == "content/e0.md:0:2" and rows[0]["hint"] == "fix it"
    assert payload["errors"] == 150 and payload["more"] == 51


# --- a real server on a hand-made output folder ----------------------------------------------


@dataclass
class Served:
    port: int
    out: Path
    hub: ReloadHub
    context: ServeContext


@pytest.fixture
def served(tree: Path) -> Iterator[Served]:
    hub = ReloadHub()
    hub.publish_success([])
    context = ServeContext(hub, tree, ping_interval=0.3, request_wait=5.0)
    server = ServerThread("127.0.0.1", 0, context)
    server.start()
    try:
        yield Served(server.port, tree, hub, context)
    finally:
        assert server.stop(), "handler threads still running after stop()"


SECRETS = (b"SECRET-OUTSIDE", b"SECRET-CONFIG", b"SECRET-SOURCE")


@pytest.mark.parametrize(("target", "status"), [
    ("/../secret.txt", 404),
    ("/../../../../../../etc/passwd", 404),
    ("/%2e%2e/secret.txt", 404),
    ("/%2e%2e/%2e%2e/etc/passwd", 404),
    ("/..%2fsecret.txt", 400),
    ("/%2e%2e%2fsecret.txt", 400),
    ("/..%5csecret.txt", 400),
    ("/..\\secret.txt", 400),
    ("/index.html%00", 400),
    ("/\x00", 400),
    ("//etc/passwd", 404),
    ("/etc/passwd", 404),
    ("http://127.0.0.1/../secret.txt", 400),
    ("/link.txt", 403),
    ("/linkdir/config.yaml", 403),
    ("/linkdir/content/a.md", 403),
    ("/.kbgen-site", 404),
    ("/__kbgen/../secret.txt", 404),
])
def test_traversal_attempts_never_escape(served: Served, target: str, status: int) -> None:
    response = raw_request(served.port, target)
    assert response.status == status, response.text
    assert not any(secret in response.body for secret in SECRETS)


@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "127.0.0.1:1",
                                  "localhost.evil.example:{port}", ""])
def test_bad_host_header_is_refused(served: Served, host: str) -> None:
    response = raw_request(served.port, "/", host=host.format(port=served.port))
    assert response.status == 403
    assert b"home" not in response.body


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "[::1]:{port}"])
def test_loopback_host_headers_are_served(served: Served, host: str) -> None:
    assert raw_request(served.port, "/", host=host.format(port=served.port)).status == 200


def test_pages_get_the_client_injected_and_files_on_disk_stay_as_built(served: Served) -> None:
    on_disk = (served.out / "index.html").read_bytes()
    response = raw_request(served.port, "/")
    assert response.status == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert int(response.headers["content-length"]) == len(response.body)
    assert f'<script src="{CLIENT_URL}" data-epoch="1"'.encode() in response.body
    assert b'data-file="/index.html"' in response.body
    assert response.body.index(b"livereload.js") < response.body.index(b"</body>")
    assert (served.out / "index.html").read_bytes() == on_disk
    assert "access-control-allow-origin" not in response.headers
    css = raw_request(served.port, "/style.css")
    assert css.body == b"body{color:red}" and css.headers["content-type"].startswith("text/css")


def test_binary_files_head_redirects_and_the_client_script(served: Served) -> None:
    binary = raw_request(served.port, "/data.bin")
    assert binary.body == (served.out / "data.bin").read_bytes()
    head = raw_request(served.port, "/", method="HEAD")
    assert head.status == 200 and head.body == b"" and int(head.headers["content-length"]) > 0
    moved = raw_request(served.port, "/sub?x=1")
    assert (moved.status, moved.headers["location"]) == (301, "/sub/?x=1")
    script = raw_request(served.port, CLIENT_URL)
    assert script.status == 200 and b"EventSource" in script.body
    assert script.headers["content-type"].startswith("text/javascript")


def test_missing_pages_get_the_sites_404_page_with_status_404(served: Served) -> None:
    response = raw_request(served.port, "/no/such/page/")
    assert response.status == 404
    assert b"Page not found" in response.body and b"livereload.js" in response.body
    assert raw_request(served.port, "/__kbgen/nothing").status == 404


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE",
                                    "PROPFIND"])
def test_only_get_and_head_are_allowed(served: Served, method: str) -> None:
    response = raw_request(served.port, "/", method=method, body=b"x=1")
    assert response.status == 405
    assert response.headers["allow"] == "GET, HEAD"


def test_requests_wait_while_a_rebuild_runs(served: Served) -> None:
    served.hub.begin_build()
    answered: list[RawResponse] = []
    client = threading.Thread(target=lambda: answered.append(raw_request(served.port, "/")))
    client.start()
    assert wait_until(lambda: served.context.requests >= 1)
    time.sleep(0.3)
    assert answered == []  # the server holds the request while the build runs
    served.hub.publish_success(["/index.html"])
    client.join(TIMEOUT)
    assert answered[0].status == 200
    assert b'data-epoch="2"' in answered[0].body  # the page of the finished build


def test_request_wait_is_bounded(served: Served) -> None:
    served.context.request_wait = 0.2
    served.hub.begin_build()  # a build that never ends
    started = time.monotonic()
    assert raw_request(served.port, "/").status == 200  # the folder is complete anyway
    assert time.monotonic() - started < 3


def test_event_stream_refuses_other_origins(served: Served) -> None:
    stream = EventStream(served.port, headers={"Origin": "http://evil.example"})
    assert stream.status == 403
    stream.close()
    same = EventStream(served.port, headers={"Origin": f"http://127.0.0.1:{served.port}"})
    assert same.status == 200
    assert same.headers["content-type"].startswith("text/event-stream")
    assert "access-control-allow-origin" not in same.headers
    same.close()


def test_event_stream_sends_reload_with_changed_files_and_pings(served: Served) -> None:
    stream = EventStream(served.port)
    served.hub.publish_success(["/index.html", "/style.css"])
    event = stream.next_event()
    assert (event.name, event.id) == ("reload", "2")
    assert event.data == {"epoch": 2, "changed": ["/index.html", "/style.css"]}
    stream.expect_nothing(0.5)
    assert ": ping" in stream.comments
    stream.close()


def test_reconnecting_tab_catches_up_on_what_it_missed(served: Served) -> None:
    served.hub.publish_success(["/a.html"])
    served.hub.publish_success(["/b.html"])
    server_id = served.context.server_id
    stream = EventStream(served.port, f"{EVENTS_URL}?epoch=1&server={server_id}")
    event = stream.next_event()
    assert event.data == {"epoch": 3, "changed": ["/a.html", "/b.html"]}
    stream.close()
    by_header = EventStream(served.port, f"{EVENTS_URL}?epoch=1&server={server_id}",
                            headers={"Last-Event-ID": "2"})
    assert by_header.next_event().data["changed"] == ["/b.html"]
    by_header.close()
    restarted = EventStream(served.port, f"{EVENTS_URL}?epoch=3&server=an-earlier-run")
    assert restarted.next_event().data == {"epoch": 3, "changed": None}
    restarted.close()


def test_closed_event_streams_end_their_threads(served: Served) -> None:
    streams = [EventStream(served.port) for _ in range(5)]
    assert wait_until(lambda: served.context.open_streams == 5)
    for stream in streams:
        stream.close()
    assert wait_until(lambda: served.context.open_streams == 0, timeout=5)
    assert wait_until(lambda: served.context.active_handlers == 0, timeout=5)


def test_stop_ends_open_streams(tree: Path) -> None:
    hub = ReloadHub()
    context = ServeContext(hub, tree, ping_interval=60)
    server = ServerThread("127.0.0.1", 0, context)
    server.start()
    streams = [EventStream(server.port) for _ in range(3)]
    assert wait_until(lambda: context.open_streams == 3)
    started = time.monotonic()
    assert server.stop()
    assert time.monotonic() - started < 3
    for stream in streams:
        with pytest.raises((ConnectionError, OSError)):
            stream.next_event(timeout=2)
        stream.close()


# --- the whole session: watcher + builder + server --------------------------------------------


ALPHA = "content/mechanism/alpha.md"
BROKEN = "---\ntitle: Alpha\nsummary: [oops\nlast_reviewed: 2026-11-01\n---\nBody\n"


def first_error(root: Path) -> Diagnostic:
    """The first error a build of `root` reports now (what the overlay must show)."""
    result = run_build(root, drafts=True, write=False, search=False)
    return next(d for d in result.diagnostics if d.is_error)


@pytest.fixture
def project(make_site) -> Path:
    root: Path = make_site({
        ALPHA: article("Alpha", "First version.", extra=MECH),
        "content/mechanism/beta.md": article("Beta", "See [[alpha]].", extra=MECH),
        "content/mechanism/draft.md": article("Drafty", "Not yet.", extra=MECH + "\ndraft: true"),
    })
    return root


def test_edit_sends_reload_bad_yaml_sends_errors_fix_sends_reload(project: Path) -> None:
    with running_session(project) as running:
        stream = running.stream()
        running.write(ALPHA, article("Alpha", "Second version.", extra=MECH))
        event = stream.next_event()
        assert event.name == "reload"
        changed = event.data["changed"]
        assert isinstance(changed, list) and "/mechanism/alpha/index.html" in changed
        assert "Second version." in running.get("/mechanism/alpha/").text

        running.write(ALPHA, BROKEN)
        expected = first_error(project)
        assert expected.path == ALPHA and expected.line is not None
        event = stream.next_event()
        assert event.name == "errors"
        rows = event.data["diagnostics"]
        assert isinstance(rows, list)
        assert rows[0]["location"] == expected.location()
        assert rows[0]["message"] == expected.message and rows[0]["hint"] == expected.hint
        assert expected.format() in running.err.getvalue()  # the terminal shows the same
        # The last good site is still served, and a new tab gets the overlay inline ...
        page = running.get("/mechanism/alpha/")
        assert page.status == 200 and "Second version." in page.text
        assert 'id="kbgen-errors"' in page.text and expected.location() in page.text
        # ... and from its event stream.
        late = running.stream()
        assert late.next_event().name == "errors"

        running.write(ALPHA, article("Alpha", "Third version.", extra=MECH))
        for opened in (stream, late):
            event = opened.next_event()
            assert event.name == "reload"
        page = running.get("/mechanism/alpha/")
        assert "Third version." in page.text and "kbgen-errors" not in page.text


def test_css_only_change_names_only_the_stylesheet(project: Path) -> None:
    with running_session(project) as running:
        stream = running.stream()
        css = project / "static/css/site.css"
        css.write_text(css.read_text("utf-8") + "\n.kbgen-test{color:red}\n", "utf-8")
        event = stream.next_event()
        assert event.data["changed"] == ["/static/css/site.css"]


def test_config_error_is_shown_and_fixing_it_reloads(project: Path) -> None:
    with running_session(project) as running:
        stream = running.stream()
        running.write("config.yaml", MINIMAL_CONFIG + "titel: typo\n")
        event = stream.next_event()
        assert event.name == "errors"
        rows = event.data["diagnostics"]
        assert isinstance(rows, list) and rows[0]["path"] == "config.yaml"
        running.write("config.yaml", MINIMAL_CONFIG)
        assert stream.next_event().name == "reload"


def test_serve_output_is_byte_identical_to_a_drafts_build(project: Path, tmp_path: Path) -> None:
    with running_session(project) as running:
        assert running.get("/mechanism/alpha/").status == 200
        served = snapshot(project / "site")
    assert run_build(project, drafts=True, search=False, output=tmp_path / "plain").ok
    assert served == snapshot(tmp_path / "plain")
    assert not any(b"__kbgen" in data for data in served.values())


def test_drafts_are_shown_with_a_banner_unless_no_drafts(project: Path) -> None:
    with running_session(project) as running:
        page = running.get("/mechanism/draft/")
        assert page.status == 200 and "draft-banner" in page.text
    with running_session(project, drafts=False) as running:
        assert running.get("/mechanism/draft/").status == 404


def test_a_new_section_folder_is_picked_up(make_site) -> None:
    root = make_site({ALPHA: article("Alpha", extra=MECH)})
    with running_session(root) as running:
        stream = running.stream()
        (root / "content/routes").mkdir()
        running.write("content/routes/oral.md",
                      article("Oral", extra="bioavailability: low"))
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:  # the folder and the file may come as two builds
            event = stream.next_event()
            changed = event.data.get("changed") or []
            if "/routes/oral/index.html" in changed:  # type: ignore[operator]
                break
        assert running.get("/routes/oral/").status == 200


def test_port_in_use_is_a_clear_error(project: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        session = PreviewSession(project / "config.yaml", ServeOptions(port=port),
                                 out=io.StringIO(), err=io.StringIO())
        with pytest.raises(ServeStartError) as raised:
            session.start()
        session.close()
    assert f"127.0.0.1:{port}: the port is already in use" in raised.value.message
    assert "--port 0" in raised.value.message
    assert raised.value.code == 2


def test_search_index_is_refreshed_in_the_background(make_site) -> None:
    root = make_site({ALPHA: article("Alpha", "Zeppelinword here.", extra=MECH)},
                     config=MINIMAL_CONFIG.replace("search: false", "search: true"))
    with running_session(root, search_delay=0.05) as running:
        search = running.session.search
        assert search is not None
        assert wait_until(lambda: search.installed == (1, 1), timeout=30)
        assert (root / "site/pagefind/pagefind.js").is_file()
        stream = running.stream()
        running.write(ALPHA, article("Alpha", "Airshipword now.", extra=MECH))
        assert stream.next_event().name == "reload"
        assert wait_until(lambda: search.installed == (2, 2), timeout=30)
        assert running.get("/pagefind/pagefind.js").status == 200
        # the saved word is in the served index and the old one is gone, and the child
        # indexed through the per-page records in the cache folder (the incremental indexer)
        words = b"".join(gzip.decompress(chunk.read_bytes())
                         for chunk in (root / "site/pagefind/index").glob("*.pf_index"))
        assert b"airshipword" in words and b"zeppelinword" not in words
        assert list((root / ".kbgen-cache").glob("v*/search/*.rec"))
        assert not (root / "content").joinpath("pagefind").exists()
    assert not search.work_dir.exists()  # the private snapshots are cleaned up on stop


def test_search_refresh_stops_when_a_rebuild_starts_and_indexes_the_new_site(
    tmp_path: Path,
) -> None:
    out = tmp_path / "site"
    out.mkdir()
    (out / "index.html").write_text("<html><body>v1</body></html>", "utf-8")
    hub = ReloadHub()
    indexing = threading.Event()
    runs: list[tuple[str, str]] = []  # (page indexed, "done" or "stopped")

    def slow_index(snapshot: Path, should_stop: Callable[[], bool]) -> bool:
        page = (snapshot / "index.html").read_text("utf-8")
        indexing.set()
        deadline = time.monotonic() + (TIMEOUT if "v1" in page else 0)
        while time.monotonic() < deadline:  # v1 takes "forever", unless stopped
            if should_stop():
                runs.append((page, "stopped"))
                return False
            time.sleep(0.01)
        (snapshot / "pagefind").mkdir()
        (snapshot / "pagefind/marker.txt").write_text(page, "utf-8")
        runs.append((page, "done"))
        return True

    refresher = SearchRefresher(hub, tmp_path / "work", delay=0.01, index=slow_index,
                                report=lambda message: None)
    try:
        state = hub.publish_success(["/index.html"])
        refresher.site_built(state.generation, out, pages_changed=True)
        assert indexing.wait(TIMEOUT)
        assert refresher.indexing  # serve's idle full check waits for it
        hub.begin_build()  # a rebuild starts while Pagefind runs: it is stopped at once
        assert wait_until(lambda: runs == [("<html><body>v1</body></html>", "stopped")])
        (out / "index.html").write_text("<html><body>v2</body></html>", "utf-8")
        state = hub.publish_success(["/index.html"])
        refresher.site_built(state.generation, out, pages_changed=True)
        assert wait_until(lambda: refresher.installed == (2, 2))
        assert (out / "pagefind/marker.txt").read_text("utf-8") == "<html><body>v2</body></html>"
        assert runs[-1] == ("<html><body>v2</body></html>", "done") and len(runs) == 2
        assert not refresher.indexing

        # A rebuild that changed no page gets the last index back at once, without Pagefind.
        shutil.rmtree(out / "pagefind")  # what swapping in a newly staged site does
        state = hub.publish_success(["/style.css"])
        refresher.site_built(state.generation, out, pages_changed=False)
        assert wait_until(lambda: refresher.installed == (3, 2))
        assert (out / "pagefind/marker.txt").is_file() and len(runs) == 2
    finally:
        refresher.close()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_crashed_search_thread_does_not_hold_off_the_idle_check(tmp_path: Path) -> None:
    out = tmp_path / "site"
    out.mkdir()
    (out / "index.html").write_text("<html><body>v1</body></html>", "utf-8")
    hub = ReloadHub()

    def crashing_index(snapshot: Path, should_stop: Callable[[], bool]) -> bool:
        raise RuntimeError("a bug in the indexer")

    refresher = SearchRefresher(hub, tmp_path / "work", delay=0.01, index=crashing_index,
                                report=lambda message: None)
    try:
        state = hub.publish_success(["/index.html"])
        refresher.site_built(state.generation, out, pages_changed=True)
        assert wait_until(lambda: not refresher._thread.is_alive())
        state = hub.publish_success(["/index.html"])
        refresher.site_built(state.generation, out, pages_changed=True)  # due, nobody to run it
        assert not refresher.indexing
    finally:
        refresher.close()


def test_index_in_subprocess_builds_a_pagefind_bundle(tmp_path: Path) -> None:
    site = tmp_path / "snapshot"
    site.mkdir()
    (site / "index.html").write_text(
        '<html lang="en"><body><main data-pagefind-body><p>zeppelin airship</p></main>'
        "</body></html>", "utf-8")
    assert index_in_subprocess(site, lambda: False)
    assert (site / "pagefind/pagefind.js").is_file()


def test_stopped_index_leaves_no_pagefind_running(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    pid_file = tmp_path / "pagefind.pid"
    fake = tmp_path / "pagefind"
    fake.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 60\n", "utf-8")
    fake.chmod(0o755)
    monkeypatch.setenv("PAGEFIND_BINARY_PATH", str(fake))
    (tmp_path / "site").mkdir()
    asked: list[bool] = []

    def stop_once_running() -> bool:
        asked.append(True)
        return pid_file.is_file()

    started = time.monotonic()
    assert not index_in_subprocess(tmp_path / "site", stop_once_running)
    assert time.monotonic() - started < 5
    pid = int(pid_file.read_text())
    assert wait_until(lambda: not _running(pid), timeout=3)


def _running(pid: int) -> bool:
    """Alive and not a zombie (a container's init may never reap orphans)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


# --- the command line ----------------------------------------------------------------------


def _start_cli(root: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, str(REPO / "build.py"), "serve", "--port", "0", *args],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert process.stdout is not None
    line = ""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "Serving http" not in line:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
    assert "Serving http" in line, process.stderr.read() if process.stderr else ""
    return process, line.split()[1]


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_cli_serves_and_stops_cleanly_with_exit_code_0(project: Path, stop_signal: int) -> None:
    process, url = _start_cli(project)
    try:
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        assert url == f"http://127.0.0.1:{port}/"
        assert raw_request(port, "/mechanism/alpha/").status == 200
        EventStream(port)  # an open stream must not keep the process alive
        process.send_signal(stop_signal)
        out, err = process.communicate(timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert "Traceback" not in err and "Stopped." in out


def test_cli_port_in_use_exits_2_without_traceback(project: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        done = subprocess.run([sys.executable, str(REPO / "build.py"), "serve", "--port",
                               str(port)], cwd=project, env=env, capture_output=True, text=True,
                              timeout=60, check=False)
    assert done.returncode == 2
    assert "already in use" in done.stderr and "Traceback" not in done.stderr


def test_cli_invalid_config_exits_2(project: Path) -> None:
    (project / "config.yaml").write_text("title: [unclosed\n", "utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, str(REPO / "build.py"), "serve", "--port", "0"],
                          cwd=project, env=env, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 2
    assert "config.yaml:" in done.stderr and "Traceback" not in done.stderr


def test_session_hands_the_change_set_to_the_builder(project: Path) -> None:
    session = PreviewSession(project / "config.yaml", ServeOptions(port=0, today=TODAY),
                             out=io.StringIO(), err=io.StringIO())
    real = session.builder
    calls: list[set[Path] | None] = []

    class Incremental:
        def build(self, changed: set[Path] | None = None, **options: object) -> object:
            calls.append(changed)
            return real.build()

        def save_state(self) -> None:
            real.save_state()

    session.builder = Incremental()  # type: ignore[assignment]
    try:
        session.start()
        edited = project.resolve() / ALPHA
        edited.write_text(article("Alpha", "Edited.", extra=MECH), "utf-8")
        assert session.rebuild({edited}) is not None
    finally:
        session.close()
    assert calls == [None, {edited}]  # a full first build, then just what changed


def test_build_state_is_saved_when_idle_and_on_close_not_after_each_save(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = PreviewSession(project / "config.yaml", ServeOptions(port=0, today=TODAY),
                             out=io.StringIO(), err=io.StringIO())
    try:
        session.start()
        assert not session.builder.state_unsaved  # the first build's state is saved at once
        states = sorted(project.glob("**/state/*"))
        assert states
        edited = project.resolve() / ALPHA
        edited.write_text(article("Alpha", "Edited while serving.", extra=MECH), "utf-8")
        assert session.rebuild({edited}) is not None
        assert session.builder.state_unsaved
        assert [p.stat().st_mtime_ns for p in states] == [
            p.stat().st_mtime_ns for p in sorted(project.glob("**/state/*"))
        ]
        # The builder loop saves it once no change has arrived for a while.
        monkeypatch.setattr(kbgen.serve.loop, "STATE_SAVE_QUIET_S", 0.0)
        monkeypatch.setattr(kbgen.serve.loop, "BATCH_WAIT_S", 0.05)  # its idle wake-ups
        loop = threading.Thread(target=session.run, daemon=True)
        loop.start()
        deadline = time.monotonic() + 10
        while session.builder.state_unsaved and time.monotonic() < deadline:
            time.sleep(0.05)
        session.stop_loop()
        loop.join(timeout=10)
        assert not session.builder.state_unsaved
        edited.write_text(article("Alpha", "Edited again.", extra=MECH), "utf-8")
        assert session.rebuild({edited}) is not None and session.builder.state_unsaved
    finally:
        session.close()
    assert not session.builder.state_unsaved  # and closing saves what is left
    # A new process (another `serve`, same variant) starts from the saved state: warm.
    again = Builder(project / "config.yaml", BuildOptions(drafts=True, search=False, today=TODAY))
    result = again.build()
    assert result.ok and result.mode == "unchanged"


def test_full_check_after_a_pause_waits_while_search_indexes(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any build stops a running search index (it would compete with the rebuild), so the
    check made when saves pause must not stop one that a save did not: it waits."""
    import dataclasses

    class StubSearch:  # stands in for SearchRefresher: only what the loop asks of it
        indexing = True

        def site_built(self, generation: int, output_dir: Path, pages_changed: bool) -> None:
            pass

    monkeypatch.setattr(kbgen.serve.loop, "STATE_SAVE_QUIET_S", 0.0)
    monkeypatch.setattr(kbgen.serve.loop, "BATCH_WAIT_S", 0.05)
    session = PreviewSession(project / "config.yaml",
                             ServeOptions(port=0, today=TODAY, quiet_period=0.05),
                             out=io.StringIO(), err=io.StringIO())
    builds: list[bool] = []  # for each build: was it told what changed (False: a full check)
    try:
        session.start()
        assert session.loop is not None
        stub = StubSearch()
        session.loop.search = stub  # type: ignore[assignment]
        session.loop.config = dataclasses.replace(session.loop.config, search=True)
        real_build = session.builder.build

        def recording_build(**kwargs: object) -> object:
            builds.append(kwargs.get("changed") is not None)
            return real_build(**kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(session.builder, "build", recording_build)
        loop = threading.Thread(target=session.run, daemon=True)
        loop.start()
        (project / ALPHA).write_text(article("Alpha", "Saved while serving.", extra=MECH), "utf-8")
        assert wait_until(lambda: True in builds)
        time.sleep(1.0)  # twenty idle wake-ups of the loop, each past the pause
        assert builds == [True]  # no full check while search indexes
        stub.indexing = False
        assert wait_until(lambda: builds == [True, False])  # once it is done, the check runs
        session.stop_loop()
        loop.join(TIMEOUT)
    finally:
        session.close()


def test_warm_start_warms_up_before_the_first_save(project: Path) -> None:
    def session() -> PreviewSession:
        return PreviewSession(project / "config.yaml", ServeOptions(port=0, today=TODAY),
                              out=io.StringIO(), err=io.StringIO())

    first = session()
    try:
        first.start()
    finally:
        first.close()
    second = session()
    try:
        second.start()
        assert second.last_result is not None and second.last_result.mode == "unchanged"
        loop = threading.Thread(target=second.run, daemon=True)
        loop.start()
        deadline = time.monotonic() + 20
        while second.last_result.mode == "unchanged" and time.monotonic() < deadline:
            time.sleep(0.05)
        second.stop_loop()
        loop.join(timeout=10)
        assert second.last_result.mode == "warm" and second.last_result.rendered == frozenset()
        edited = project.resolve() / ALPHA
        edited.write_text(article("Alpha", "First save after a warm start.", extra=MECH), "utf-8")
        result = second.rebuild({edited})
        assert result is not None and result.ok
        assert result.resolved == 1 and result.rendered == {"page:alpha"}
    finally:
        second.close()


def test_config_change_that_moves_the_output_folder_is_followed(project: Path) -> None:
    with running_session(project) as running:
        stream = running.stream()
        running.write("config.yaml", MINIMAL_CONFIG + "output_dir: public\n")
        assert stream.next_event().name == "reload"
        assert (project / "public/mechanism/alpha/index.html").is_file()
        (project / "site").joinpath("mechanism/alpha/index.html").unlink()
        assert "First version." in running.get("/mechanism/alpha/").text  # from public/
        running.write(ALPHA, article("Alpha", "Moved on.", extra=MECH))
        assert stream.next_event().name == "reload"
        assert "Moved on." in running.get("/mechanism/alpha/").text


def test_cli_serve_of_a_site_big_enough_for_worker_processes(make_site) -> None:
    """With serve's threads alive, page loading uses fresh (forkserver) worker processes,
    which import the main module: it must not start a second server."""
    import kbgen.load

    count = getattr(kbgen.load, "PARALLEL_MIN_FRESH", 200) + 10
    root = make_site({f"content/mechanism/page-{n:03d}.md": article(f"Page {n}", extra=MECH)
                      for n in range(count)})
    process, url = _start_cli(root)
    try:
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        assert raw_request(port, "/mechanism/page-007/").status == 200
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert "already in use" not in err and "Traceback" not in err
    assert "Serving http" not in out  # _start_cli read the one and only such line


def test_a_deleted_output_is_rebuilt_without_a_save(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kbgen.serve.loop, "OUTPUT_CHECK_S", 0.2)
    monkeypatch.setattr(kbgen.serve.loop, "BATCH_WAIT_S", 0.05)  # the idle loop's wake-ups
    with running_session(project) as running:
        assert running.get("/mechanism/alpha/").status == 200
        shutil.rmtree(project / "site")  # rm -rf site/
        assert wait_until(lambda: running.get("/mechanism/alpha/").status == 200)
        assert "First version." in running.get("/mechanism/alpha/").text
        (project / "site/mechanism/beta/index.html").unlink()  # one page
        assert wait_until(lambda: running.get("/mechanism/beta/").status == 200)
        assert "files deleted from the output folder" in running.out.getvalue()


# --- shedding slow and excess clients -------------------------------------------------------


def _trickle_until_closed(port: int, limit: float) -> float:
    """Send a request one byte every 0.1 s (never finishing); seconds until the server hangs
    up, or `limit` if it never does."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=limit) as sock:
        for byte in (b"GET / HTTP/1.0\r\nX-Slow: " + b"a" * 1000):
            if time.monotonic() - started > limit:
                return limit
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            readable, _, _ = select.select([sock], [], [], 0.1)
            if readable and not sock.recv(4096, socket.MSG_PEEK):
                break
    return time.monotonic() - started


def test_a_header_deadline_that_trickled_bytes_cannot_extend(served: Served) -> None:
    served.context.header_deadline = 0.5
    elapsed = _trickle_until_closed(served.port, limit=8.0)
    assert elapsed < 5.0, "the slow client was never cut off"  # the deadline is 0.5 s
    assert raw_request(served.port, "/").status == 200  # and the server answers on


def test_connections_beyond_the_bound_get_503_and_the_rest_are_served(served: Served) -> None:
    served.context.max_connections = 4
    idle = [socket.create_connection(("127.0.0.1", served.port)) for _ in range(4)]
    try:
        assert wait_until(lambda: served.context.active_handlers == 4)
        refused = raw_request(served.port, "/")
        assert refused.status == 503 and refused.headers["retry-after"] == "1"
        assert served.context.refused == 1
    finally:
        for sock in idle:
            sock.close()
    assert wait_until(lambda: served.context.active_handlers == 0)
    assert raw_request(served.port, "/").status == 200


def test_the_listen_backlog_holds_a_burst_of_connections() -> None:
    assert PreviewServer.request_queue_size >= 1024
