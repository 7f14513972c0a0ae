"""kbgen.watch: which paths count as source changes, burst coalescing, and real watchdog runs."""

from __future__ import annotations

import errno
import os
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import article
from watchdog.events import DirModifiedEvent, FileModifiedEvent, FileMovedEvent
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from kbgen.config import load_config
from kbgen.watch import (
    ChangeKind,
    Watcher,
    WatchRoots,
    classify,
    collect_burst,
    describe,
    event_paths,
)

ROOT = Path("/project")
ROOTS = WatchRoots(
    config_file=ROOT / "config.yaml",
    content_dir=ROOT / "content",
    templates_dir=ROOT / "templates",
    static_dir=ROOT / "static",
    ignored_dirs=(ROOT / "site", ROOT / ".kbgen-cache"),
)


@pytest.mark.parametrize(("rel", "kind"), [
    ("config.yaml", ChangeKind.CONFIG),
    ("content/mechanism/alpha.md", ChangeKind.CONTENT),
    ("content/mechanism/diagram.svg", ChangeKind.CONTENT),
    ("content/references.yaml", ChangeKind.DATA),
    ("content/glossary.yaml", ChangeKind.DATA),
    ("content/mechanism/references.yaml", ChangeKind.CONTENT),
    ("templates/base.html", ChangeKind.TEMPLATE),
    ("templates/partials/nav.html", ChangeKind.TEMPLATE),
    ("static/css/site.css", ChangeKind.STATIC),
    ("content/newsection", ChangeKind.CONTENT),  # a new folder: its files follow
    ("static", ChangeKind.STATIC),  # the source folder itself (created or deleted)
])
def test_classify_sources(rel: str, kind: ChangeKind) -> None:
    assert classify(ROOT / rel, ROOTS) is kind


@pytest.mark.parametrize("rel", [
    "site/mechanism/alpha/index.html",  # the output folder: the build's own writes
    "site",
    ".kbgen-cache/pages.db",
    ".site.staging-123/index.html",  # beside the project, not in a source folder
    "README.md",
    "config.yaml.swp",
    "content/.git/index",
    "content/mechanism/.alpha.md.swp",  # vim swap file
    "content/mechanism/alpha.md~",  # vim/emacs backup
    "content/mechanism/4913",  # vim's "can I write here" probe
    "content/mechanism/.#alpha.md",  # emacs lock file
    "content/mechanism/#alpha.md#",  # emacs auto-save
    "content/mechanism/alpha.md___jb_tmp___",  # JetBrains safe write
    "content/mechanism/alpha.md___jb_old___",
    "templates/.hidden/base.html",
    "static/js/__pycache__/x.pyc",
    "other/file.md",
])
def test_classify_ignores_noise(rel: str) -> None:
    assert classify(ROOT / rel, ROOTS) is None


def test_event_paths_counts_both_names_of_a_rename_and_skips_folder_noise() -> None:
    moved = FileMovedEvent("/p/content/a.md___jb_tmp___", "/p/content/a.md")
    assert event_paths(moved) == [Path("/p/content/a.md___jb_tmp___"), Path("/p/content/a.md")]
    assert event_paths(FileModifiedEvent("/p/content/a.md")) == [Path("/p/content/a.md")]
    assert event_paths(DirModifiedEvent("/p/content")) == []


def _feed(changes: queue.Queue[Path], paths: list[str], gap: float) -> threading.Thread:
    def run() -> None:
        for name in paths:
            time.sleep(gap)
            changes.put(Path(name))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_collect_burst_coalesces_events_closer_than_the_quiet_period() -> None:
    changes: queue.Queue[Path] = queue.Queue()
    feeder = _feed(changes, ["a", "b", "a", "c"], gap=0.02)
    batch = collect_burst(changes, first_timeout=2, quiet=0.3)
    feeder.join()
    assert batch == {Path("a"), Path("b"), Path("c")}


def test_collect_burst_separates_saves_after_a_pause() -> None:
    changes: queue.Queue[Path] = queue.Queue()
    changes.put(Path("first"))
    threading.Timer(0.4, changes.put, args=(Path("second"),)).start()
    assert collect_burst(changes, first_timeout=1, quiet=0.1) == {Path("first")}
    assert collect_burst(changes, first_timeout=2, quiet=0.1) == {Path("second")}


def test_collect_burst_returns_empty_when_nothing_happens() -> None:
    started = time.monotonic()
    assert collect_burst(queue.Queue(), first_timeout=0.1) == set()
    assert time.monotonic() - started < 1


def test_wake_returns_a_waiting_batch_at_once() -> None:
    """`Watcher.wake` is how the builder loop is stopped: a `next_batch` waiting out a long
    timeout returns empty, and a burst being drained ends with what has arrived."""
    watcher = Watcher(ROOTS)
    woken: list[set[Path]] = []
    waiting = threading.Thread(target=lambda: woken.append(watcher.next_batch(60)))
    waiting.start()
    watcher.wake()
    waiting.join(10)
    assert woken == [set()]
    changes: queue.Queue[Path | None] = queue.Queue()
    changes.put(Path("a"))
    changes.put(None)
    assert collect_burst(changes, first_timeout=1, quiet=60, max_burst=60) == {Path("a")}


def test_collect_burst_ends_a_never_ending_stream_at_max_burst() -> None:
    changes: queue.Queue[Path] = queue.Queue()
    feeder = _feed(changes, [f"f{i}" for i in range(60)], gap=0.02)  # 1.2 s of events
    started = time.monotonic()
    batch = collect_burst(changes, first_timeout=2, quiet=0.1, max_burst=0.3)
    took = time.monotonic() - started
    feeder.join()
    assert 0 < len(batch) < 60
    assert took < 1.0


def test_describe_lists_a_few_paths() -> None:
    paths = [ROOT / "content" / f"{n}.md" for n in "dcba"]
    assert describe(paths, ROOT) == "content/a.md, content/b.md, content/c.md and 1 more"


# --- real watchdog runs ---------------------------------------------------------------------


@pytest.fixture
def project(make_site) -> Path:
    root: Path = make_site({
        "content/mechanism/alpha.md": article("Alpha", extra="status: established"),
    })
    return root


def _roots(root: Path) -> WatchRoots:
    config, problems = load_config(root / "config.yaml")
    assert config is not None, problems
    return WatchRoots.from_config(config)


@pytest.fixture
def watcher(project: Path) -> Iterator[Watcher]:
    watching = Watcher(_roots(project), quiet=0.15)
    assert watching.start() is None
    yield watching
    watching.stop()


def _next(watcher: Watcher, timeout: float = 5.0) -> set[Path]:
    """The next non-empty batch (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = watcher.next_batch(0.2)
        if batch:
            return batch
    return set()


def _resolved(root: Path, rel: str) -> Path:
    return root.resolve() / rel


def test_plain_save_is_one_batch(project: Path, watcher: Watcher) -> None:
    page = project / "content/mechanism/alpha.md"
    page.write_text(article("Alpha", "Edited.", extra="status: established"), "utf-8")
    assert _next(watcher) == {_resolved(project, "content/mechanism/alpha.md")}
    assert watcher.next_batch(0.3) == set()  # nothing left over from that save


def test_vim_style_save_is_an_edit_of_the_real_file(project: Path, watcher: Watcher) -> None:
    folder = project / "content/mechanism"
    page = folder / "alpha.md"
    (folder / "4913").write_text("", "utf-8")  # vim's probe: can a file be created here?
    (folder / "4913").unlink()
    (folder / ".alpha.md.swp").write_bytes(b"swap")
    os.rename(page, folder / "alpha.md~")  # backup by rename ...
    page.write_text(article("Alpha", "Saved by vim.", extra="status: established"), "utf-8")
    (folder / "alpha.md~").unlink()  # ... new file written, backup removed
    (folder / ".alpha.md.swp").unlink()
    assert _next(watcher) == {_resolved(project, "content/mechanism/alpha.md")}


def test_jetbrains_safe_write_is_an_edit_of_the_real_file(project: Path, watcher: Watcher) -> None:
    folder = project / "content/mechanism"
    temp = folder / "alpha.md___jb_tmp___"
    temp.write_text(article("Alpha", "Saved by an IDE.", extra="status: established"), "utf-8")
    os.rename(folder / "alpha.md", folder / "alpha.md___jb_old___")
    os.rename(temp, folder / "alpha.md")
    (folder / "alpha.md___jb_old___").unlink()
    assert _next(watcher) == {_resolved(project, "content/mechanism/alpha.md")}


def test_new_folders_are_watched_recursively(project: Path, watcher: Watcher) -> None:
    folder = project / "content/routes"
    folder.mkdir()
    time.sleep(0.3)  # let the watch on the new folder arrive, as after a real mkdir
    _next(watcher, timeout=1)
    (folder / "oral.md").write_text(article("Oral"), "utf-8")
    batch = _next(watcher)
    assert _resolved(project, "content/routes/oral.md") in batch


def test_output_folder_and_unrelated_files_are_not_changes(project: Path,
                                                           watcher: Watcher) -> None:
    (project / "site").mkdir()
    (project / "site/index.html").write_text("<p>built</p>", "utf-8")
    (project / "notes.txt").write_text("not a source", "utf-8")
    (project / "content/mechanism/alpha.md~").write_text("backup", "utf-8")
    assert _next(watcher, timeout=1.0) == set()


def test_config_and_new_source_folders_are_watched(make_site) -> None:
    root = make_site({"content/mechanism/alpha.md": article("Alpha")}, copy_theme=False)
    (root / "templates").mkdir()
    watching = Watcher(_roots(root), quiet=0.15)
    watching.start()
    try:
        (root / "config.yaml").write_text((root / "config.yaml").read_text() + "\n", "utf-8")
        assert _next(watching) == {_resolved(root, "config.yaml")}
        (root / "static").mkdir()  # did not exist when watching began
        assert _resolved(root, "static") in _next(watching)
        (root / "static/site.css").write_text("body{}", "utf-8")
        assert _next(watching) == {_resolved(root, "static/site.css")}
    finally:
        watching.stop()


def test_polling_observer_sees_saves(project: Path) -> None:
    watching = Watcher(_roots(project), poll=True, quiet=0.15)
    watching.start()
    try:
        time.sleep(0.1)
        (project / "content/mechanism/alpha.md").write_text(article("Alpha", "Polled."),
                                                            "utf-8")
        assert _next(watching, timeout=5) == {
            _resolved(project, "content/mechanism/alpha.md")
        }
    finally:
        watching.stop()


class _ExhaustedInotify(Observer):  # type: ignore[misc,valid-type]
    def start(self) -> None:
        raise OSError(errno.ENOSPC, "inotify watch limit reached")


def test_exhausted_inotify_falls_back_to_polling_and_names_the_sysctl(project: Path) -> None:
    def factory(poll: bool) -> BaseObserver:
        from watchdog.observers.polling import PollingObserver

        return PollingObserver(timeout=0.2) if poll else _ExhaustedInotify()

    watching = Watcher(_roots(project), quiet=0.15, observer_factory=factory)
    notice = watching.start()
    try:
        assert notice is not None
        assert "fs.inotify.max_user_watches" in notice and "polling" in notice
        assert watching.poll
        time.sleep(0.1)
        (project / "content/mechanism/alpha.md").write_text(article("Alpha", "After."), "utf-8")
        assert _next(watching) == {_resolved(project, "content/mechanism/alpha.md")}
    finally:
        watching.stop()
