"""Watch the project's sources for `serve`: filter editor noise, coalesce bursts of saves.

Input: the folders and config file a build reads (`WatchRoots`, from the `Config`).
Output: batches of changed source paths, one `set[Path]` per burst of saves
(`Watcher.next_batch`), each path classified by `classify` into a `ChangeKind`.

watchdog's observer thread only filters and enqueues; the builder loop drains the queue until
it has been quiet for about 100 ms, so one save that touches several files (or an editor's
write-a-temp-file-then-rename dance) becomes one rebuild. A rename counts as a change of both
names, so "safe write" saves (vim's backup rename, JetBrains' `___jb_tmp___` file renamed over
the real one) rebuild the real file, while the temp names themselves are ignored by
`kbgen.discover.is_ignored_name`. `--poll`, or inotify limits that are exhausted, switch to
watchdog's polling observer (network drives, containers).
"""

from __future__ import annotations

import contextlib
import enum
import errno
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch
from watchdog.observers.polling import PollingObserver

from kbgen.config_types import Config
from kbgen.discover import DATA_FILES, is_ignored_name

logger = logging.getLogger(__name__)

QUIET_PERIOD_S = 0.1  #: a burst ends after this long without a new event
MAX_BURST_S = 2.0  #: ...or after this long in total (a `git checkout` of thousands of files)
POLL_INTERVAL_S = 0.5  #: how often the polling observer rescans (MkDocs uses 0.5 s too)

#: The events a build cares about. Listing them keeps inotify from reporting every open() and
#: close() of a source file, which each build itself would otherwise trigger by the thousand.
WATCHED_EVENTS: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileDeletedEvent,
    FileMovedEvent,
    FileClosedEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
]

#: errno of an exhausted inotify limit -> the sysctl that raises it
INOTIFY_LIMITS = {
    errno.ENOSPC: "fs.inotify.max_user_watches",
    errno.EMFILE: "fs.inotify.max_user_instances",
}


class ChangeKind(enum.Enum):
    """What a changed path is to the build (Zola's `ChangeKind`)."""

    CONFIG = "config"
    CONTENT = "content"  #: a page (or an asset beside the pages)
    DATA = "data"  #: content/references.yaml or content/glossary.yaml
    TEMPLATE = "template"
    STATIC = "static"


@dataclass(frozen=True, slots=True)
class WatchRoots:
    """The sources a build reads, and the folders whose events are the build's own writes."""

    config_file: Path
    content_dir: Path
    templates_dir: Path
    static_dir: Path
    ignored_dirs: tuple[Path, ...]  #: the output and cache folders

    @classmethod
    def from_config(cls, config: Config) -> WatchRoots:
        return cls(
            config_file=config.root / config.path.name,  # as watchdog reports it
            content_dir=config.content_dir,
            templates_dir=config.templates_dir,
            static_dir=config.static_dir,
            ignored_dirs=(config.output_dir, config.cache_dir),
        )

    def source_dirs(self) -> tuple[tuple[Path, ChangeKind], ...]:
        return (
            (self.content_dir, ChangeKind.CONTENT),
            (self.templates_dir, ChangeKind.TEMPLATE),
            (self.static_dir, ChangeKind.STATIC),
        )


def classify(path: Path, roots: WatchRoots) -> ChangeKind | None:
    """The kind of source `path` is, or None for anything a build does not read.

    None covers the output and cache folders, dotfiles and dot-folders (`.git`), `__pycache__`
    and editor temp files, anywhere below a source folder.
    """
    if path == roots.config_file:
        return ChangeKind.CONFIG
    if any(path == d or path.is_relative_to(d) for d in roots.ignored_dirs):
        return None
    for folder, kind in roots.source_dirs():
        if path != folder and not path.is_relative_to(folder):
            continue
        parts = path.relative_to(folder).parts
        if any(is_ignored_name(part) or part == "__pycache__" for part in parts):
            return None
        if kind is ChangeKind.CONTENT and len(parts) == 1 and parts[0] in DATA_FILES:
            return ChangeKind.DATA
        return kind
    return None


def event_paths(event: FileSystemEvent) -> list[Path]:
    """The paths an event touches: both names of a rename, none for folder "modified" noise.

    A folder's "modified" event only says that an entry inside it changed, and that entry
    has its own event. Renames report both names: a file renamed away is gone (a change), and
    a temp file renamed over a source (a safe-write save) changes that source.
    """
    if event.is_directory and event.event_type == "modified":
        return []
    paths = [Path(os.fsdecode(event.src_path))]
    if event.dest_path:
        paths.append(Path(os.fsdecode(event.dest_path)))
    return paths


def collect_burst(
    changes: queue.Queue[Path | None],
    first_timeout: float,
    quiet: float = QUIET_PERIOD_S,
    max_burst: float = MAX_BURST_S,
    clock: Callable[[], float] = time.monotonic,
) -> set[Path]:
    """Wait up to `first_timeout` for a change, then drain until `quiet` passes with none.

    Returns the set of changed paths (empty if nothing arrived in time). A burst never lasts
    longer than `max_burst`, so a long stream of changes still rebuilds now and then. A
    `None` in the queue (`Watcher.wake`) ends the wait at once with what has arrived.
    """
    try:
        first = changes.get(timeout=first_timeout)
    except queue.Empty:
        return set()
    if first is None:
        return set()
    batch = {first}
    deadline = clock() + max_burst
    while True:
        remaining = deadline - clock()
        if remaining <= 0:
            return batch
        try:
            later = changes.get(timeout=min(quiet, remaining))
        except queue.Empty:
            return batch
        if later is None:
            return batch
        batch.add(later)


class _Enqueue(FileSystemEventHandler):
    """Runs on watchdog's thread: filter, then hand over. Never builds anything."""

    def __init__(self, watcher: Watcher) -> None:
        self._watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        for path in event_paths(event):
            self._watcher.offer(path)


ObserverFactory = Callable[[bool], BaseObserver]


def make_observer(poll: bool) -> BaseObserver:
    if poll:
        return PollingObserver(timeout=POLL_INTERVAL_S)
    return Observer()


class Watcher:
    """Watches the sources of one project and hands out batches of changed paths.

    The project folder itself is watched without recursion (config.yaml, and source folders
    that are created later); each source folder that exists is watched recursively, which
    includes folders created inside it later.
    """

    def __init__(
        self,
        roots: WatchRoots,
        *,
        poll: bool = False,
        quiet: float = QUIET_PERIOD_S,
        observer_factory: ObserverFactory = make_observer,
    ) -> None:
        self.roots = roots
        self.poll = poll
        self.quiet = quiet
        self._factory = observer_factory
        self._changes: queue.Queue[Path | None] = queue.Queue()  #: None: see wake()
        self._lock = threading.Lock()
        self._observer: BaseObserver | None = None
        self._watched: dict[Path, ObservedWatch] = {}
        self._handler = _Enqueue(self)

    def offer(self, path: Path) -> None:
        """Queue `path` if a build reads it (called from watchdog's thread)."""
        if classify(path, self.roots) is not None:
            self._changes.put(path)

    def _is_source_root(self, path: Path) -> bool:
        return any(path == folder for folder, _ in self.roots.source_dirs())

    def start(self) -> str | None:
        """Start watching; returns a notice for the user when it had to fall back to polling."""
        try:
            self._start_observer()
            return None
        except OSError as exc:
            sysctl = INOTIFY_LIMITS.get(exc.errno or 0)
            if sysctl is None or self.poll:
                raise
            self.stop()
            self.poll = True
            self._start_observer()
            return (
                f"warning: the inotify limit {sysctl} is exhausted ({exc.strerror}); "
                f"watching by polling every {POLL_INTERVAL_S} s instead\n"
                f"  hint: raise it, e.g. 'sudo sysctl {sysctl}=524288' "
                f"(add it to /etc/sysctl.conf to keep it)"
            )

    def _start_observer(self) -> None:
        with self._lock:
            self._observer = self._factory(self.poll)
            self._watched = {}
            self._schedule_existing()
            self._observer.start()

    def _schedule_existing(self) -> None:
        assert self._observer is not None
        wanted = {folder: True for folder, _ in self.roots.source_dirs()}
        wanted.setdefault(self.roots.config_file.parent, False)
        for folder, recursive in wanted.items():
            if folder in self._watched or not folder.is_dir():
                continue
            self._watched[folder] = self._observer.schedule(
                self._handler, str(folder), recursive=recursive, event_filter=WATCHED_EVENTS
            )

    def refresh(self, folders: Iterable[Path] = ()) -> None:
        """Watch `folders` afresh (created, deleted or replaced) and any new source folder."""
        with self._lock:
            if self._observer is None or not self._observer.is_alive():
                return
            for folder in folders:
                watch = self._watched.pop(folder, None)
                if watch is not None:
                    # KeyError: watchdog already dropped the watch of a deleted folder
                    with contextlib.suppress(KeyError):
                        self._observer.unschedule(watch)
            self._schedule_existing()

    def retarget(self, roots: WatchRoots) -> None:
        """Follow a config change that moved a source, output or cache folder."""
        if roots == self.roots:
            return
        self.stop()
        self.roots = roots
        self._start_observer()

    def wake(self) -> None:
        """Make a waiting `next_batch` return now (from another thread): so that whoever
        stops the builder loop need not wait out its timeout."""
        self._changes.put(None)

    def next_batch(self, timeout: float) -> set[Path]:
        """The next burst of changed source paths; empty if none arrived within `timeout`."""
        batch = collect_burst(self._changes, timeout, quiet=self.quiet)
        replaced = [path for path in batch if self._is_source_root(path)]
        if replaced:
            self.refresh(replaced)  # a source folder appeared, went or was replaced
        return {path for path in batch if classify(path, self.roots) is not None}

    def stop(self) -> None:
        with self._lock:
            observer, self._observer = self._observer, None
            self._watched = {}
        if observer is not None:
            observer.stop()
            if observer.is_alive():
                observer.join(timeout=5)


def describe(paths: Iterable[Path], root: Path, limit: int = 3) -> str:
    """'content/a.md, static/x.css and 2 more' for the terminal."""
    shown = sorted(_rel(path, root) for path in paths)
    text = ", ".join(shown[:limit])
    if len(shown) > limit:
        text += f" and {len(shown) - limit} more"
    return text


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)
