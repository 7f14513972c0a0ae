"""The reload hub and the Server-Sent Events stream: how a finished build reaches every tab.

Input: the rebuild loop's `begin_build` / `publish_success(changed output paths)` /
`publish_failure(diagnostics)`; a connecting tab's position (the epoch its page was served
at, its `Last-Event-ID`, the server run its page came from).
Output: `HubState` snapshots for requests, and the bytes of the event stream: `reload`
(which output files changed since the tab's epoch, or null for "everything"), `errors` (a
failed build's diagnostics for the overlay), and `: ping` heartbeats.

`ReloadHub` is the only state the threads share: the builder loop writes it, request and
event-stream threads wait on its condition variable, and the search thread asks it whether
the site it indexed is still the current one.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from kbgen.diagnostics import Diagnostic

PING_INTERVAL_S = 15.0  #: event-stream heartbeat (Zola pings its WebSocket every 30 s)
STREAM_CHECK_S = 1.0  #: how often an idle event stream checks for shutdown or a closed client
RETRY_MS = 1000  #: EventSource reconnect delay after the server went away
HISTORY_LENGTH = 256  #: builds whose changed-file lists are kept for reconnecting tabs
OVERLAY_LIMIT = 100  #: diagnostics sent to the overlay; the terminal shows them all


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


def retry_message() -> bytes:
    """Sent first on every stream: how soon the browser reconnects after the server went."""
    return f"retry: {RETRY_MS}\n\n".encode()


# --- one tab's stream ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TabPosition:
    """Where a connecting tab stands, from its page's `?epoch=&server=` and `Last-Event-ID`."""

    page_epoch: int | None  #: the epoch its page was served at (None: not said)
    last_event_id: int | None  #: the last event it saw, when the browser reconnects
    page_server: str  #: the id of the server run its page came from


def catch_up(
    hub: ReloadHub, state: HubState, tab: TabPosition, server_id: str
) -> tuple[bytes, int]:
    """What a connecting tab missed before `state` (maybe nothing), and the epoch it is then at.

    `state` must be read before the stream was answered: a tab that connects, then sees a
    build finish, must get that build's event.
    """
    if tab.page_epoch is not None and tab.page_server != server_id:
        # The page came from an earlier run of the server: everything may differ.
        reload_all = sse_message("reload", {"epoch": state.epoch, "changed": None}, state.epoch)
        return reload_all, state.epoch
    known = [e for e in (tab.page_epoch, tab.last_event_id) if e is not None]
    epoch = min(max(known), state.epoch) if known else state.epoch
    if epoch < state.epoch:
        state, changed = hub.since(epoch)
        return event_for(state, changed), state.epoch
    if state.failed:  # a tab opened while the error stands
        return event_for(state, frozenset()), epoch
    return b"", epoch


def follow_builds(
    write: Callable[[bytes], object],
    hub: ReloadHub,
    epoch: int,
    *,
    ping_interval: float,
    stopping: threading.Event,
    tab_gone: Callable[[], bool],
) -> None:
    """Write each later build's event until serve stops or the tab goes; ping meanwhile."""
    next_ping = time.monotonic() + ping_interval
    while not stopping.is_set():
        wait = max(0.0, min(STREAM_CHECK_S, next_ping - time.monotonic()))
        state = hub.wait_newer(epoch, wait)
        if state.closed:
            return
        if state.epoch > epoch:
            state, changed = hub.since(epoch)
            write(event_for(state, changed))
            epoch = state.epoch
            next_ping = time.monotonic() + ping_interval
        elif time.monotonic() >= next_ping:
            write(b": ping\n\n")  # a closed tab shows up as a broken pipe
            next_ping = time.monotonic() + ping_interval
        elif tab_gone():
            return


def client_gone(sock: socket.socket) -> bool:
    """True if the peer closed the connection (readable with nothing to read)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True
