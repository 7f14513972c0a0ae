"""The rebuild loop of `serve`: a burst of saves -> one `Builder.build()` -> `hub.publish_*`.

Input: batches of changed source paths from `kbgen.watch.Watcher` (one per burst of saves),
and the idle clock (for the output-folder check and the pause after saves).
Output: builds through `kbgen.incremental.Builder`; every finished build published to the
`ReloadHub` (which tells the open tabs), one line on the terminal per rebuild (the
diagnostics of a failed one), and the search refresher told about each new site.

It runs on the main thread. A build that crashes is a bug in kbgen: the traceback goes to
the terminal, the tabs show it as an error, and the last good site stays served.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, TextIO

from kbgen.config import load_config
from kbgen.config_types import Config
from kbgen.diagnostics import Diagnostic, error, format_text
from kbgen.incremental import Builder
from kbgen.pipeline import BuildResult
from kbgen.serve.handler import ServeContext
from kbgen.serve.reload import ReloadHub
from kbgen.serve.search_refresh import SearchRefresher
from kbgen.watch import ChangeKind, Watcher, WatchRoots, classify, describe

BATCH_WAIT_S = 0.5  #: the idle builder loop wakes this often (its output and pause checks)
STATE_SAVE_QUIET_S = 3.0  #: seconds without changes before a deferred build state is saved
#: how often an idle `serve` checks that the output folder still holds every file it built
#: (a deleted site or page is rebuilt; ~10 ms for 10,000 files)
OUTPUT_CHECK_S = 3.0


class Say(Protocol):
    """How the loop talks to the terminal: progress to stdout, problems to stderr."""

    def __call__(self, text: str, *, problem: bool = False) -> None: ...


def internal_error(exc: BaseException) -> Diagnostic:
    return error(
        "kbgen",
        None,
        None,
        f"internal error while building: {type(exc).__name__}: {exc}",
        "this is a bug in kbgen, not in your content; the terminal shows the traceback",
    )


class RebuildLoop:
    """Builds after every burst of saves and tells everyone: the hub, the terminal, search."""

    def __init__(
        self,
        *,
        config_path: Path,
        config: Config,
        builder: Builder,
        hub: ReloadHub,
        watcher: Watcher,
        context: ServeContext,
        search: SearchRefresher | None,
        say: Say,
        err: TextIO,
    ) -> None:
        self.config_path = config_path
        self.config = config  #: the current config: a valid edit of config.yaml replaces it
        self.builder = builder
        self.hub = hub
        self.watcher = watcher
        self.context = context
        self.search = search
        self._say = say
        self._err = err  #: where a crashed build's traceback goes
        self.last_result: BuildResult | None = None
        self._shown_warnings: frozenset[Diagnostic] = frozenset()
        self._stopping = threading.Event()  #: set by stop(), from another thread

    def first_build(self) -> None:
        self._rebuild(None, "first build")

    def stop(self) -> None:
        """Make `run` return once the build under way (if any) is done; from another thread.

        The watcher is woken, so the loop stops now rather than at its next wake-up."""
        self._stopping.set()
        self.watcher.wake()

    def run(self) -> None:
        """Rebuild after every burst of saves until `stop()` (or Ctrl-C)."""
        if self.last_result is not None and self.last_result.mode == "unchanged":
            # A warm start skipped loading and resolving the pages; do it now, while the
            # writer reads the page, so their first save costs what the later ones do.
            self._rebuild(None, "warm-up", announce=False, warm_up=True)
        quiet_since = output_checked = time.monotonic()
        unchecked = False  #: rebuilds since the last full check relied on the watcher alone
        while not self._stopping.is_set():
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
                # The check waits while search re-indexes: any build stops that run (the
                # first index after a start takes ~6 s at 1,000 pages; stopped, it starts over).
                search = self._active_search()
                if not (search is not None and search.indexing):
                    if unchecked and self.last_result is not None and self.last_result.ok:
                        self._rebuild(None, "a full check after a pause", announce=False)
                    unchecked = False
                self.builder.save_state()

    def _active_search(self) -> SearchRefresher | None:
        """The search refresher, if search is on in the current config."""
        return self.search if self.search is not None and self.config.search else None

    def _output_damaged(self) -> bool:
        result = self.last_result
        if result is None or not result.ok:
            return False
        return self.builder.output_damaged(self.context.output_dir)

    def rebuild(self, changed: set[Path]) -> BuildResult | None:
        """Build after a batch of saves (following a new config first)."""
        root = self.config.root
        if any(classify(path, self.watcher.roots) is ChangeKind.CONFIG for path in changed):
            self._reload_config()
        return self._rebuild(changed, describe(changed, root) + " changed")

    def _reload_config(self) -> None:
        """A valid new config may move folders: follow it (an invalid one shows as errors)."""
        config, _ = load_config(self.config_path)
        if config is None:
            return
        self.config = config
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
            result = self._build(changed, warm_up)
        except Exception as exc:  # a bug: keep serving, show it everywhere
            traceback.print_exc(file=self._err)
            self.hub.publish_failure((internal_error(exc),))
            self._say(f"Build crashed ({trigger}); still serving the last good site.",
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

    def _build(self, changed: set[Path] | None, warm_up: bool) -> BuildResult:
        if warm_up:
            return self.builder.warm_up()
        if changed is not None:
            # The watcher reports every change, so the builder need not look for others
            # (a full check runs after each pause, see run).
            return self.builder.build(changed=changed, trust_changed=True)
        return self.builder.build()

    def _publish_success(
        self, result: BuildResult, elapsed: float, trigger: str, announce: bool = True
    ) -> None:
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
            self._say(f"Built {result.pages} pages in {elapsed:.2f} s ({trigger}); {files}")
        search = self._active_search()
        if search is not None:
            search.site_built(
                state.generation,
                self.context.output_dir,
                pages_changed=any(rel.endswith(".html") for rel in changed),
            )

    def _publish_failure(self, result: BuildResult, trigger: str) -> None:
        self.hub.publish_failure(result.diagnostics)
        errors = [d for d in result.diagnostics if d.is_error]
        self._say(format_text(errors + self._new_warnings(result.diagnostics)), problem=True)
        self._say(
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
            self._say(format_text(fresh), problem=True)
