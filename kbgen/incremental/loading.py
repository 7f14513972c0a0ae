"""Loading a whole site, cached and in parallel: the incremental builder's load stage.

Input: the page `SourceFile`s, a `LoadContext` (config, glossary, today), the records of the
previous build and a `MarkupStore` (converted bodies by key, in memory and on disk).
Output: a `Page` (or None) per file, diagnostics, and a `SourceRecord` per file for the next
build. A file whose stamp (size, mtime, ctime, inode) is unchanged is not read again; a file
whose body was converted before (same bytes, Markdown options, glossary and generator) is not
converted again; the remaining conversions run in worker processes when there are many
(a pool from the injected `PoolFactory`, started with the `PageLoader` as its state).
Each page is loaded by the same stage functions as the reference build (kbgen/load.py).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from kbgen.config_types import Config
from kbgen.diagnostics import Diagnostic
from kbgen.discover import SourceFile
from kbgen.incremental.cache import CacheDir
from kbgen.incremental.markup_keys import markup_key
from kbgen.incremental.markup_store import MarkupStore, entry_bytes, open_entry
from kbgen.incremental.sealing import register_fast_pickling
from kbgen.incremental.stamps import Stamp, stamp_of, stamp_trusted
from kbgen.incremental.workers import (
    PoolFactory,
    forkable,
    process_pool,
    shrinking_chunks,
    with_state,
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
    """Loads one page file at a time, reusing cached conversions.

    It is also the state load workers start with (workers.process_pool): a forked worker
    inherits it whole (the Markdown engine, the in-memory conversions); a pickled one
    carries only its context and opens the cache folder itself.
    """

    def __init__(self, context: LoadContext, markups: MarkupStore) -> None:
        self.context = context
        self.markups = markups
        self._engine: MarkupEngine | None = None
        self.converted = 0

    def __getstate__(self) -> LoadContext:
        return self.context

    def __setstate__(self, context: LoadContext) -> None:
        cache = CacheDir(context.cache_root) if context.cache_root is not None else None
        self.__init__(context, MarkupStore(cache))  # type: ignore[misc]

    def engine(self) -> MarkupEngine:
        if self._engine is None:
            from kbgen.markup import MarkupEngine  # Markdown is imported only when converting

            config = self.context.config
            self._engine = MarkupEngine(config.markdown, self.context.glossary)
        return self._engine

    def load(
        self,
        file: SourceFile,
        stamp: Stamp | None,
        previous: SourceRecord | None,
        remember: bool = True,
    ) -> tuple[SourceRecord, Markup | None]:
        """Read, identify and parse one file; the Markdown conversion comes from the cache
        whenever the same body was converted before with the same engine. `remember`: put
        a new conversion in the store (workers do not: theirs go back to the parent)."""
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
            if remember:
                self.markups.put(key, markup)
            self.converted += 1
        diagnostics += markup_problems(file.shown, markup)
        return SourceRecord(stamp, digest, today, outline, tuple(diagnostics), key), markup


class ReadOnlyMarkups(MarkupStore):
    """For `check`, which promises to write nothing: conversions the cache folder holds are
    read as usual, new ones are kept in memory only, and the folder is never created."""

    def put(self, key: str, markup: Markup, envelope: bytes | None = None) -> None:
        with self._lock:
            self._memory[key] = markup

    def flush(self, live_keys: Iterable[str] | None = None) -> None:
        return


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
    pools: PoolFactory = process_pool,
) -> LoadOutcome:
    """Every page file -> `Page`, re-reading only files whose stamp changed.

    `previous` holds the records of the last build that scanned at `scanned_ns`; `force` are
    content rels to re-read whatever their stamp says (the watcher saw them change); with
    `trusted`, they are the only files that changed, and the others are not stat-ed. Misses
    are converted in `jobs` processes when there are enough of them to pay for the start-up.
    Results do not depend on `jobs`: each page is a pure function of its file.
    `known_pages`: the pages the `previous` records made, reused while record and
    conversion are the very same objects (a warm `serve` keeps them). `pools` makes the
    worker pool (see workers.py).
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
        workers = _run_work(work, loader, _Collected(records, markups), jobs, progress, pools)
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

Work = list[tuple[SourceFile, Stamp | None, SourceRecord | None]]


class _Collected(NamedTuple):
    """Where loaded pages go: their records and conversions, by content rel."""

    records: dict[str, SourceRecord]
    markups: dict[str, Markup]

    def add(self, rel: str, record: SourceRecord, markup: Markup | None) -> None:
        self.records[rel] = record
        if markup is not None:
            self.markups[rel] = markup


def _run_work(
    work: Work,
    loader: PageLoader,
    into: _Collected,
    jobs: int,
    progress: Callable[[int, int], None] | None,
    pools: PoolFactory,
) -> int:
    """Load `work` in this process or in `jobs` worker processes; returns the count used."""
    if jobs > 1 and len(work) >= PARALLEL_MIN:  # (so a one-page edit never imports multiprocessing)
        can_fork = forkable()
        if can_fork or len(work) >= PARALLEL_MIN_FRESH:
            if can_fork:
                loader.engine()  # Markdown imported and set up once, shared by forked workers
            if _run_in_pool(work, loader, into, jobs, progress, pools):
                return jobs
    for done, (file, stamp, prior) in enumerate(work, start=1):
        into.add(file.rel, *loader.load(file, stamp, prior))
        if progress is not None:
            progress(done, len(work))
    return 1


def _run_in_pool(
    work: Work,
    loader: PageLoader,
    into: _Collected,
    jobs: int,
    progress: Callable[[int, int], None] | None,
    pools: PoolFactory,
) -> bool:
    """Load `work` in a pool of `jobs` workers that start with `loader`; False if no pool
    could be made (nothing was loaded then)."""
    chunks = shrinking_chunks(work, jobs, smallest=4, largest=64)
    files = {file.rel: file for file, _, _ in work}
    done = 0
    with pools(jobs, loader) as pool:
        if pool is None:
            return False
        for results in pool.imap(with_state(_load_chunk), chunks):
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
                into.add(rel, record, markup)
                done += 1
            if progress is not None:
                progress(done, len(work))
    return True


def _load_chunk(loader: PageLoader, items: Work) -> list[tuple[str, SourceRecord, bytes | None]]:
    """In a worker: load some pages; a conversion comes back as its cache entry (pickled
    once, used as the parent's Markup and written to the pack as it is)."""
    results: list[tuple[str, SourceRecord, bytes | None]] = []
    for file, stamp, prior in items:
        before = loader.converted
        record, markup = loader.load(file, stamp, prior, remember=False)
        entry = None
        if loader.converted > before and markup is not None and record.markup_key is not None:
            entry = entry_bytes(record.markup_key, markup)
        results.append((file.rel, record, entry))
    return results
