"""Loading a whole site, cached and in parallel: the incremental builder's load stage.

Input: the page `SourceFile`s, a `LoadContext` (config, glossary, today), the records of the
previous build and a `MarkupStore` (converted bodies by key, in memory and on disk).
Output: a `Page` (or None) per file, diagnostics, and a `SourceRecord` per file for the next
build. A file whose stamp (size, mtime, ctime, inode) is unchanged is not read again; a file
whose body was converted before (same bytes, Markdown options, glossary and generator) is not
converted again; the remaining conversions run in worker processes when there are many.
Each page is loaded by the same stage functions as the reference build (kbgen/load.py).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import hashlib
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from kbgen.config import Config
from kbgen.diagnostics import Diagnostic
from kbgen.discover import SourceFile
from kbgen.incremental.cache import (
    CacheDir,
    CacheKey,
    MarkupStore,
    Stamp,
    adopt_key,
    cache_key,
    entry_bytes,
    markup_key,
    open_entry,
    register_fast_pickling,
    stamp_of,
    stamp_trusted,
)
from kbgen.load import (
    PageOutline,
    decode_text,
    identify,
    markup_problems,
    parse_outline,
    read_source,
)
from kbgen.model import GlossaryTerm, Markup, Page

if TYPE_CHECKING:
    import multiprocessing.pool

    from kbgen.markup import MarkupEngine


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """What loading one page file found; reused while the file's stamp stays the same."""

    stamp: Stamp | None  #: None: never trusted (the file could not be read)
    digest: str  #: sha256 of the file's bytes ("" if unreadable)
    today: dt.date  #: the date review warnings were computed for
    outline: PageOutline | None  #: None when the front matter is unusable
    diagnostics: tuple[Diagnostic, ...]  #: reading, front-matter and Markdown problems
    markup_key: str | None  #: cache key of the body's conversion; None if never converted


@dataclass(frozen=True, slots=True)
class LoadContext:
    """Everything loading a page depends on; picklable, so worker processes can use it."""

    config: Config
    glossary: tuple[GlossaryTerm, ...]
    engine_key: str  #: cache.engine_key(): generator, Markdown options, glossary
    today: dt.date
    cache_root: Path | None  #: config.cache_dir, or None to keep nothing on disk


class PageLoader:
    """Loads one page file at a time, reusing cached conversions; one per process."""

    def __init__(self, context: LoadContext, markups: MarkupStore, remember: bool = True) -> None:
        self.context = context
        self.markups = markups
        self.remember = remember  #: False in workers: conversions go back to the parent
        self._engine: MarkupEngine | None = None
        self.converted = 0

    def engine(self) -> MarkupEngine:
        if self._engine is None:
            from kbgen.markup import MarkupEngine  # Markdown is imported only when converting

            config = self.context.config
            self._engine = MarkupEngine(config.markdown, self.context.glossary)
        return self._engine

    def load(
        self, file: SourceFile, stamp: Stamp | None, previous: SourceRecord | None
    ) -> tuple[SourceRecord, Markup | None]:
        """Read, identify and parse one file; the Markdown conversion comes from the cache
        whenever the same body was converted before with the same engine."""
        today = self.context.today
        data, diagnostics = read_source(file)
        if data is None:
            return SourceRecord(None, "", today, None, tuple(diagnostics), None), None
        digest = hashlib.sha256(data).hexdigest()
        if previous is not None and previous.digest == digest and previous.today == today:
            markup = self.markups.get(previous.markup_key) if previous.markup_key else None
            if markup is not None or previous.markup_key is None:
                return _restamped(previous, stamp), markup
        text, diagnostics = decode_text(data, file.shown)
        if text is None:
            return SourceRecord(stamp, digest, today, None, tuple(diagnostics), None), None
        source, diagnostics = identify(file, text, data)
        if source is None:
            return SourceRecord(stamp, digest, today, None, tuple(diagnostics), None), None
        outline, split, diagnostics = parse_outline(source, self.context.config, today)
        if split is None:
            return SourceRecord(stamp, digest, today, None, tuple(diagnostics), None), None
        key = markup_key(self.context.engine_key, split.body_line, split.body)
        markup = self.markups.get(key)
        if markup is None:
            markup = self.engine().convert(split.body, split.body_line)
            if self.remember:
                self.markups.put(key, markup)
            self.converted += 1
        diagnostics += markup_problems(file.shown, markup)
        return SourceRecord(stamp, digest, today, outline, tuple(diagnostics), key), markup


register_fast_pickling(PageOutline, SourceRecord, SourceFile, LoadContext)


def _digest_of(file: SourceFile) -> str | None:
    try:
        return hashlib.sha256(file.path.read_bytes()).hexdigest()
    except OSError:
        return None


def _restamped(record: SourceRecord, stamp: Stamp | None) -> SourceRecord:
    if record.stamp == stamp:
        return record
    return SourceRecord(
        stamp, record.digest, record.today, record.outline, record.diagnostics, record.markup_key
    )


@dataclass
class LoadOutcome:
    records: dict[str, SourceRecord]  #: content rel -> record, in file order
    pages: list[Page]
    diagnostics: list[Diagnostic]
    reloaded: set[str]  #: rels read again this build (stamp changed, new, forced)
    converted: int  #: Markdown conversions actually run (cache misses)
    workers: int  #: processes used for the work (1 = in this process)


def load_pages(
    files: Sequence[SourceFile],
    loader: PageLoader,
    previous: Mapping[str, SourceRecord],
    scanned_ns: int,
    *,
    force: frozenset[str] = frozenset(),
    trusted: bool = False,
    jobs: int = 1,
    progress: Callable[[int, int], None] | None = None,
    known_pages: Mapping[str, Page] | None = None,
) -> LoadOutcome:
    """Every page file -> `Page`, re-reading only files whose stamp changed.

    `previous` holds the records of the last build that scanned at `scanned_ns`; `force` are
    content rels to re-read whatever their stamp says (the watcher saw them change); with
    `trusted`, they are the only files that changed, and the others are not stat-ed. Misses
    are converted in `jobs` processes when there are enough of them to pay for the start-up.
    Results do not depend on `jobs`: each page is a pure function of its file.
    `known_pages`: the pages the `previous` records made, reused while record and
    conversion are the very same objects (a warm `serve` keeps them).
    """
    today = loader.context.today
    records: dict[str, SourceRecord] = {}
    markups: dict[str, Markup] = {}
    work: list[tuple[SourceFile, Stamp | None, SourceRecord | None]] = []
    for file in files:
        prior = previous.get(file.rel)
        unlisted = trusted and file.rel not in force  # the watcher named every change
        stamp = None if unlisted else stamp_of(file.path)
        if prior is not None and prior.today == today:
            if unlisted:
                same = True
            else:
                # Unchanged by stamp, or (a recent or reported file) by digest: reuse it.
                same = file.rel not in force and stamp_trusted(stamp, prior.stamp, scanned_ns)
                if not same and prior.digest and stamp is not None:
                    same = _digest_of(file) == prior.digest
                    prior = _restamped(prior, stamp) if same else prior
            markup = None
            if same and prior.markup_key:  # most of these are never read: unpickled on use
                markup = loader.markups.get_lazy(prior.markup_key)
            if same and (markup is not None or prior.markup_key is None):
                records[file.rel] = prior
                if markup is not None:
                    markups[file.rel] = markup
                continue
        if unlisted:  # reusable but not in the markup cache any more: convert it again
            stamp = stamp_of(file.path)
        work.append((file, stamp, prior))
    workers = 1
    if work:
        workers = _run_work(work, loader, records, markups, jobs, progress)
    ordered = {f.rel: records[f.rel] for f in files}
    pages: list[Page] = []
    diagnostics: list[Diagnostic] = []
    for file in files:
        record = ordered[file.rel]
        diagnostics += record.diagnostics
        markup = markups.get(file.rel)
        if markup is not None and record.outline is not None:
            known = known_pages.get(file.rel) if known_pages is not None else None
            if known is None or known.markup is not markup or previous.get(file.rel) is not record:
                known = record.outline.with_markup(markup)
            pages.append(known)
    return LoadOutcome(
        ordered, pages, diagnostics, {f.rel for f, _, _ in work}, loader.converted, workers
    )


PARALLEL_MIN = 48  #: fewer conversions than this run faster in-process than with a pool
PARALLEL_MIN_FRESH = 200  #: the same when workers cannot fork (each imports kbgen anew)


def _run_work(
    work: list[tuple[SourceFile, Stamp | None, SourceRecord | None]],
    loader: PageLoader,
    records: dict[str, SourceRecord],
    markups: dict[str, Markup],
    jobs: int,
    progress: Callable[[int, int], None] | None,
) -> int:
    """Load `work` in this process or in `jobs` worker processes; returns the count used."""
    import multiprocessing  # imported here: most builds never start a pool

    done = 0
    forkable = threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods()
    if jobs <= 1 or len(work) < (PARALLEL_MIN if forkable else PARALLEL_MIN_FRESH):
        for file, stamp, prior in work:
            record, markup = loader.load(file, stamp, prior)
            records[file.rel] = record
            if markup is not None:
                markups[file.rel] = markup
            done += 1
            if progress is not None:
                progress(done, len(work))
        return 1
    if forkable:
        loader.engine()  # import Markdown and build the engine once; forked workers share it
    _run_in_pool(work, loader, records, markups, jobs, progress)
    return jobs


def _run_in_pool(
    work: list[tuple[SourceFile, Stamp | None, SourceRecord | None]],
    loader: PageLoader,
    records: dict[str, SourceRecord],
    markups: dict[str, Markup],
    jobs: int,
    progress: Callable[[int, int], None] | None,
) -> None:
    global _INHERITED
    chunks = shrinking_chunks(work, jobs, smallest=4, largest=64)
    files = {file.rel: file for file, _, _ in work}
    done = 0
    _INHERITED = loader
    try:
        with worker_pool(jobs, _init_worker, (loader.context,)) as pool:
            assert pool is not None  # only require_fork pools can be absent
            for results in pool.imap(_load_chunk, chunks):
                for rel, record, entry in results:
                    markup = None
                    if entry is not None:  # converted by the worker: the cache entry's bytes
                        key, markup = open_entry(entry)
                        loader.markups.put(key, markup, entry)
                        loader.converted += 1
                    elif record.markup_key is not None:  # the worker found it cached
                        markup = loader.markups.get(record.markup_key)
                        if markup is None:  # gone meanwhile: convert it here
                            record, markup = loader.load(files[rel], None, None)
                    records[rel] = record
                    if markup is not None:
                        markups[rel] = markup
                    done += 1
                if progress is not None:
                    progress(done, len(work))
    finally:
        _INHERITED = None


T = TypeVar("T")


def shrinking_chunks(
    items: Sequence[T], workers: int, smallest: int, largest: int
) -> list[list[T]]:
    """`items` cut into chunks for `workers` processes that take them as they become free.

    Chunks shrink towards the end (each a share of what is left), so the processes finish
    within a small chunk of each other instead of one working alone through a large one.
    """
    chunks: list[list[T]] = []
    start = 0
    while start < len(items):
        size = max(smallest, min(largest, (len(items) - start) // (workers * 3)))
        chunks.append(list(items[start : start + size]))
        start += size
    return chunks


@contextlib.contextmanager
def worker_pool(
    jobs: int,
    initializer: Callable[..., None],
    initargs: tuple[object, ...],
    *,
    require_fork: bool = False,
) -> Iterator[multiprocessing.pool.Pool | None]:
    """A pool of `jobs` worker processes, terminated (not awaited) if anything goes wrong.

    `fork` is used when this process has no other threads: workers then inherit everything
    built so far at no cost. With threads alive (serve's HTTP server and watcher) forking is
    unsafe, so workers start fresh with `forkserver`, and callers that need inherited state
    (`require_fork`) get None and run in-process instead. Workers ignore Ctrl-C; the parent
    receives it and terminates them.
    """
    import multiprocessing

    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        method = "fork"
    elif require_fork:
        yield None
        return
    else:
        method = "forkserver" if "forkserver" in methods else "spawn"
    context = multiprocessing.get_context(method)
    # The build runs with the cyclic GC off (see pipeline). Workers turn it back on, or
    # Python-Markdown's and Jinja's reference cycles pile up in them (~8 KB per page); and
    # freezing what exists now keeps their collections off the objects they share with this
    # process, which would otherwise be copied page by page (the documented recipe for fork).
    gc.freeze()
    # The cache key is resolved here, before any worker exists, and handed to each: workers
    # must seal entries with the key the parent opens them with (even a key for this run only).
    key = cache_key()
    try:
        pool = context.Pool(jobs, _worker_start, (initializer, initargs, key))
        try:
            yield pool
        except BaseException:
            pool.terminate()
            pool.join()
            raise
        pool.close()
        pool.join()
    finally:
        gc.unfreeze()


def _worker_start(
    initializer: Callable[..., None], initargs: tuple[object, ...], key: CacheKey
) -> None:
    import signal

    adopt_key(key)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    gc.enable()
    initializer(*initargs)


# Worker-process side. With the fork start method the parent's loader (and its in-memory
# cache) is inherited; otherwise each worker builds its own from the pickled context.
_INHERITED: PageLoader | None = None
_WORKER: PageLoader | None = None


def _init_worker(context: LoadContext) -> None:
    global _WORKER
    if _INHERITED is not None and _INHERITED.context == context:
        _WORKER = PageLoader(context, _INHERITED.markups, remember=False)
        _WORKER._engine = _INHERITED._engine
    else:
        cache = CacheDir(context.cache_root) if context.cache_root is not None else None
        _WORKER = PageLoader(context, MarkupStore(cache), remember=False)


def _load_chunk(
    items: list[tuple[SourceFile, Stamp | None, SourceRecord | None]],
) -> list[tuple[str, SourceRecord, bytes | None]]:
    """Load some pages; a conversion comes back as its cache entry (pickled once, used as
    the parent's Markup and written to the pack as it is)."""
    loader = _WORKER
    assert loader is not None, "worker not initialised"
    results: list[tuple[str, SourceRecord, bytes | None]] = []
    for file, stamp, prior in items:
        before = loader.converted
        record, markup = loader.load(file, stamp, prior)
        entry = None
        if loader.converted > before and markup is not None and record.markup_key is not None:
            entry = entry_bytes(record.markup_key, markup)
        results.append((file.rel, record, entry))
    return results
