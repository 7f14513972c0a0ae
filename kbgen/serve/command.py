"""`kbgen serve`: build, serve the output folder, and show every save in the open tabs.

Input: the `serve` command line (config path, host, port, --open, --poll, --no-drafts).
Output: an HTTP server on the output folder until Ctrl-C, SIGTERM or SIGHUP (then exit code
0; 2 when it cannot start: an invalid config, a port in use), and one line on the terminal
per rebuild.

`PreviewSession` wires the parts together and takes them down again: the rebuild loop on the
main thread (`loop.py`), the HTTP server (`server.py`, `handler.py`), watchdog's thread in
`kbgen.watch` (it only filters and enqueues) and the search thread (`search_refresh.py`).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import errno
import functools
import signal
import sys
import threading
import webbrowser
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from kbgen.config import load_config
from kbgen.diagnostics import format_text
from kbgen.incremental import Builder
from kbgen.pipeline import BuildOptions, BuildResult
from kbgen.serve.handler import REQUEST_WAIT_S, ServeContext
from kbgen.serve.loop import RebuildLoop
from kbgen.serve.reload import PING_INTERVAL_S, ReloadHub
from kbgen.serve.safety import is_loopback, url_host
from kbgen.serve.search_refresh import (
    SEARCH_DELAY_S,
    SearchRefresher,
    index_in_subprocess,
    search_work_dir,
)
from kbgen.serve.server import ServerThread
from kbgen.watch import Watcher, WatchRoots

EXIT_OK, EXIT_USAGE = 0, 2


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
        self.context: ServeContext | None = None
        self.server: ServerThread | None = None
        self.watcher: Watcher | None = None
        self.search: SearchRefresher | None = None
        self.loop: RebuildLoop | None = None  #: made by start()
        self.url = ""

    @property
    def last_result(self) -> BuildResult | None:
        return None if self.loop is None else self.loop.last_result

    def say(self, text: str, *, problem: bool = False) -> None:
        print(text, file=self._err if problem else self._out, flush=True)

    # -- start and stop

    def start(self) -> str:
        """Bind, watch, build once; returns the URL. Raises ServeStartError for user mistakes."""
        config, problems = load_config(self.config_path)
        if config is None:
            raise ServeStartError(format_text(problems))
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
                index=functools.partial(index_in_subprocess, cache_dir=config.cache_dir),
                report=functools.partial(self.say, problem=True),
            )
        self.server.start()
        self.url = self.server.url
        self.loop = RebuildLoop(
            config_path=self.config_path, config=config, builder=self.builder, hub=self.hub,
            watcher=self.watcher, context=self.context, search=self.search, say=self.say,
            err=self._err,
        )
        self.loop.first_build()
        self.builder.save_state()  # later states wait for a pause (see RebuildLoop.run)
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

    # -- the builder loop (kbgen/serve/loop.py)

    def run(self) -> None:
        """Rebuild after every burst of saves until `stop_loop()` (or Ctrl-C)."""
        assert self.loop is not None, "start() first"
        self.loop.run()

    def stop_loop(self) -> None:
        """Make `run` return (from another thread: tests, an embedding program); `close`
        then takes the rest down."""
        assert self.loop is not None, "start() first"
        self.loop.stop()

    def rebuild(self, changed: set[Path]) -> BuildResult | None:
        assert self.loop is not None, "start() first"
        return self.loop.rebuild(changed)


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
