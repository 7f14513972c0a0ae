"""The dev server under load: 2,000 requests from 50 concurrent clients while 50 event streams
stay open, then a rebuild reaches every stream, and nothing is left running afterwards.

Loopback only; every wait is bounded; this checks correctness (no error, no blocked request,
no leaked thread), not speed (speed lives in benchmarks/serve_latency.py).
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from conftest import article
from test_serve import MECH, TIMEOUT, raw_request, running_session, wait_until

from kbgen.serve.handler import CLIENT_URL

CLIENTS = 50
REQUESTS = 2000
STREAMS = 50

#: (request target, expected status, a byte string the body must contain)
TARGETS = [
    ("/", 200, b"livereload.js"),
    ("/mechanism/alpha/", 200, b"Alpha"),
    ("/mechanism/beta/", 200, b"Beta"),
    ("/static/css/site.css", 200, b"{"),
    (CLIENT_URL, 200, b"EventSource"),
    ("/mechanism", 301, b"/mechanism/"),
    ("/no/such/page/", 404, b"livereload.js"),
    ("/../config.yaml", 404, b""),
]


def _client(port: int, number: int) -> Counter[str]:
    """One client's share of the requests; returns outcome counts ('ok' or a problem)."""
    outcomes: Counter[str] = Counter()
    for request in range(REQUESTS // CLIENTS):
        target, status, needle = TARGETS[(number + request) % len(TARGETS)]
        try:
            response = raw_request(port, target, timeout=TIMEOUT)
        except OSError as exc:
            outcomes[f"{target}: {type(exc).__name__}"] += 1
            continue
        good = response.status == status and needle in response.body
        outcomes["ok" if good else f"{target}: status {response.status}"] += 1
    return outcomes


def test_2000_requests_from_50_clients_with_50_streams_open(make_site) -> None:
    root: Path = make_site({
        "content/mechanism/alpha.md": article("Alpha", "Body.", extra=MECH),
        "content/mechanism/beta.md": article("Beta", "See [[alpha]].", extra=MECH),
    })
    threads_before = threading.active_count()
    with running_session(root) as running:
        context = running.session.context
        assert context is not None
        streams = [running.stream() for _ in range(STREAMS)]
        assert wait_until(lambda: context.open_streams == STREAMS)

        with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
            outcomes = sum(pool.map(_client, [running.port] * CLIENTS, range(CLIENTS)),
                           Counter())
        assert outcomes == Counter({"ok": REQUESTS})
        assert context.open_streams == STREAMS  # the streams stayed open throughout

        running.write("content/mechanism/alpha.md", article("Alpha", "Edited.", extra=MECH))
        for stream in streams:  # every open tab hears about the rebuild
            event = stream.next_event()
            assert event.name == "reload"
            assert "/mechanism/alpha/index.html" in event.data["changed"]  # type: ignore[operator]

        for stream in streams:
            stream.close()
        assert wait_until(lambda: context.open_streams == 0, timeout=5)
        assert wait_until(lambda: context.active_handlers == 0, timeout=5)
        assert context.requests >= REQUESTS + STREAMS
    # The server, watcher, builder loop and every handler thread are gone.
    assert wait_until(lambda: threading.active_count() <= threads_before, timeout=5), [
        thread.name for thread in threading.enumerate()
    ]
