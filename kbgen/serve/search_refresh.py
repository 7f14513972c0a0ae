"""Search under `serve`: keep `<output>/pagefind/` current beside the builds, never in their way.

Input: after each successful rebuild, the site's generation, its output folder and whether
any page changed (`SearchRefresher.site_built`); the `ReloadHub`, to know whether a build
runs or has replaced the site since. Output: a fresh Pagefind bundle installed into the
output folder a moment after saves pause, and a warning line (once) when indexing fails.

serve builds without search (Pagefind over a whole site takes longer than a rebuild), so
this runs on its own thread, at low priority, in a child process it can kill.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import kbgen
from kbgen import search
from kbgen.config_types import Config
from kbgen.serve.reload import ReloadHub
from kbgen.write_folders import pid_alive as _pid_alive

SEARCH_DELAY_S = 1.0  #: re-index search once saves have paused this long
SEARCH_NICENESS = 10  #: the search thread (and Pagefind) yield the CPU to rebuilds
SEARCH_BUNDLE = "pagefind"  #: the folder of the search index, as the templates load it
SEARCH_WORK_PREFIX = "serve-search-"  #: the search thread's work folders, named by pid
#: how often a running index checks whether a rebuild has started. Until it is killed the child
#: competes with that rebuild for the CPU: at 0.2 s a body edit's rebuild of 1,000 pages ran
#: ~25% slower (benchmarks/serve_latency.py, docs/benchmarks.md); 50 wake-ups a second while
#: indexing cost nothing measurable.
STOP_POLL_S = 0.02


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


#: Runs in the child: the incremental indexer (Pagefind over the pages whose HTML changed,
#: the bundle written from the per-page records in the cache folder, argv[2]); without a cache
#: folder, or when the records do not verify (another key), one full Pagefind run. Exits 1
#: with the message if Pagefind is missing or fails.
_INDEX_CHILD = (
    "import sys\n"
    "from pathlib import Path\n"
    "from kbgen.incremental.cache import CacheDir\n"
    "from kbgen.incremental.search_index import index_site\n"
    "from kbgen.search import SearchIndexError\n"
    "try:\n"
    "    index_site(Path(sys.argv[1]), CacheDir(Path(sys.argv[2])) if sys.argv[2:] else None)\n"
    "except SearchIndexError as exc:\n"
    "    sys.exit(f'{exc}')\n"
)


def index_in_subprocess(
    site: Path, should_stop: Callable[[], bool], cache_dir: Path | None = None
) -> bool:
    """Index `site` with Pagefind in a child process group; False if stopped midway.

    A process, not a thread: the index can be abandoned the moment a rebuild starts (the
    group, Pagefind included, is killed), no Pagefind outlives `serve`, and the bundle
    post-processing never competes with the builder for the GIL.
    """
    package_parent = str(Path(kbgen.__file__).resolve().parent.parent)  # holds kbgen/
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [package_parent, os.environ.get("PYTHONPATH")])
    )}
    child = subprocess.Popen(
        [sys.executable, "-c", _INDEX_CHILD, str(site), *([str(cache_dir)] if cache_dir else [])],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env=env, start_new_session=True,
    )
    try:
        while True:
            try:
                _, problem = child.communicate(timeout=STOP_POLL_S)
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
        self._indexing = False  #: a re-index is under way
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

    @property
    def indexing(self) -> bool:
        """A re-index is under way or due: a build started now would stop it. (False once the
        thread is gone, so that a crash in it cannot hold serve's idle check off for good.)"""
        with self._cond:
            due = self._indexing or (self._reindex_due and not self._closed)
        return due and self._thread.is_alive()

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
            if reindex:
                with self._cond:
                    self._indexing = True
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
            finally:
                with self._cond:
                    self._indexing = False

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
        if self._master is not None:  # the last index: an edit links its unchanged files
            os.symlink(self._master, snapshot / SEARCH_BUNDLE, target_is_directory=True)
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
