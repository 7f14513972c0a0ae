#!/usr/bin/env python3
"""Dev-server load: request latency of `kbgen serve` under many clients and open event streams.

What is measured (wall clock, this machine, loopback only): `kbgen serve` runs in its own
process on a copy of the repository's project (search off) in benchmarks/work/serve-load/;
`--streams` Server-Sent-Event streams stay open (as that many tabs would), while `--clients`
client threads, spread over `--processes` processes, each send one request after another
for `--seconds` (HTTP/1.0, a new connection per request, as the server speaks it). Each
request's latency runs from just before connecting to its last byte read. Every loop is
bounded by the duration, and every socket has a timeout.

    .venv/bin/python benchmarks/serve_load.py --clients 200 --streams 50 --seconds 20

Prints requests, errors (non-200 answers or failed connections), and latency percentiles.
This is a measurement, not a test: it never fails on a slow result.
"""

from __future__ import annotations

import argparse
import multiprocessing
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HERE = REPO / "benchmarks" / "work" / "serve-load"
TARGETS = ("/", "/static/css/site.css", "/__kbgen/livereload.js", "/no/such/page/")


def _project() -> Path:
    """A copy of the repository's project to serve (its output never touches the repo)."""
    root = HERE / "project"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    for name in ("content", "templates", "static"):
        shutil.copytree(REPO / name, root / name)
    config = (REPO / "config.yaml").read_text("utf-8")
    config = re.sub(r"(?m)^search:.*$", "", config) + "\nsearch: false\n"
    (root / "config.yaml").write_text(config, "utf-8")
    return root


def _start_server(root: Path) -> tuple[subprocess.Popen[str], int]:
    process = subprocess.Popen(
        [sys.executable, str(REPO / "build.py"), "serve", "--port", "0"],
        cwd=root, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if found:
            threading.Thread(target=process.stdout.read, daemon=True).start()  # drain
            return process, int(found[1])
        if not line and process.poll() is not None:
            break
    process.kill()
    raise SystemExit("kbgen serve did not start")


def _request(port: int, target: str) -> tuple[int, float]:
    """(status or 0 on failure, seconds)."""
    started = time.perf_counter()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(f"GET {target} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        status = int(b"".join(chunks).split(b" ", 2)[1])
    except (OSError, ValueError, IndexError):
        status = 0
    return status, time.perf_counter() - started


def _client_process(port: int, threads: int, seconds: float, queue: object) -> None:
    results: list[tuple[int, float]] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client(number: int) -> None:
        mine = []
        count = 0
        while time.monotonic() < stop_at:
            mine.append(_request(port, TARGETS[(number + count) % len(TARGETS)]))
            count += 1
        with lock:
            results.extend(mine)

    workers = [threading.Thread(target=client, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(seconds + 60)
    queue.put(results)  # type: ignore[attr-defined]


def _open_streams(port: int, count: int) -> list[socket.socket]:
    streams = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.sendall(
            f"GET /__kbgen/events HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
        )
        sock.recv(4096)  # the headers and the retry line: the stream is open
        streams.append(sock)
    return streams


def _percentile(ordered: list[float], share: float) -> float:
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--processes", type=int, default=4)
    args = parser.parse_args()
    process, port = _start_server(_project())
    try:
        streams = _open_streams(port, args.streams)
        queue: multiprocessing.Queue[list[tuple[int, float]]] = multiprocessing.Queue()
        share = [args.clients // args.processes] * args.processes
        share[0] += args.clients - sum(share)
        clients = [
            multiprocessing.Process(
                target=_client_process, args=(port, n, args.seconds, queue)
            )
            for n in share
        ]
        for client in clients:
            client.start()
        results = [item for _ in clients for item in queue.get(timeout=args.seconds + 120)]
        for client in clients:
            client.join(30)
        alive = sum(1 for sock in streams if _stream_alive(sock))
        for sock in streams:
            sock.close()
    finally:
        process.terminate()
        process.wait(30)
    latencies = sorted(seconds for _, seconds in results)
    errors = sum(1 for status, _ in results if status not in (200, 404))
    print(
        f"{args.clients} clients, {args.streams} event streams, {args.seconds:.0f} s: "
        f"{len(results)} requests, {errors} errors, {alive}/{args.streams} streams open at "
        "the end"
    )
    print(
        "latency ms: "
        + ", ".join(
            f"{name} {_percentile(latencies, share) * 1000:.1f}"
            for name, share in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999))
        )
        + f", max {latencies[-1] * 1000:.1f}"
    )


def _stream_alive(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(65536, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True  # nothing to read, not closed
    except OSError:
        return False


if __name__ == "__main__":
    main()
