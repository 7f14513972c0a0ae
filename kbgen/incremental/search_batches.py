"""The first search index of a site, made in batches of pages instead of one Pagefind run.

Input: every HTML page of the site in Pagefind's walk order with its digest, and a function
that runs Pagefind over a list of pages in a scratch folder (returning that bundle). Output: the
whole bundle, byte for byte what one full Pagefind run + `search.canonicalize_bundle` writes,
every page's record saved in the cache, and the bundle's `IndexState`.

Why. One Pagefind run over 10,000 pages holds the whole site's index in memory (2.3 GB
measured); over 500 pages it holds ~0.1 GB, and records are independent of where a page sits
in the site (the edit path relies on the same fact). The pages are split in walk-order runs,
so page numbers only count on: each batch's postings are appended, already encoded, to one
buffer per word, and the batch's records are saved and dropped, so Python holds the index's
bytes once, not one tuple per posting. Two Pagefind runs go at once (threads waiting on the
child processes) while the finished batches are split, so both cores work.

Not modelled (None: the caller makes one full run): a batch whose meta key list differs from
the first batch's (the tails' meta markers would need renumbering),
no page with an indexed body, a bundle the record reader does not know.
"""

from __future__ import annotations

import concurrent.futures
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kbgen.incremental.search_bundle import (
    FragmentNamer,
    TableBuilder,
    clear_index_files,
    write_chunks,
    write_filters,
    write_meta,
)
from kbgen.incremental.search_records import PageRecord, RecordStore, records_from_bundle
from kbgen.incremental.search_state import IndexState, PageEntry

BATCH_PAGES = 500  #: pages per Pagefind run (~0.1 GB of Pagefind memory)
#: Pagefind runs at a time: one run keeps about one core busy (measured: 3.2 s of user time
#: in 3.2 s for 1,000 pages), so a second one and the splitting share the other
RUNS_AT_ONCE = 2

#: runs Pagefind over these pages (site-relative paths) in a fresh scratch folder of the
#: given number; returns the bundle folder (inside that scratch folder, removed once split)
RunBatch = Callable[[list[str], int], Path]


@dataclass(slots=True)
class _Site:
    """What the batches split so far have given: pages, fragments, filters, meta keys."""

    bundle: Path
    builder: TableBuilder = field(default_factory=TableBuilder)
    pages: list[PageEntry] = field(default_factory=list)
    filters: list[tuple[tuple[str, tuple[str, ...]], ...]] = field(default_factory=list)
    fragments: list[tuple[str, int]] = field(default_factory=list)
    meta_keys: tuple[str, ...] | None = None
    seen_keys: set[str] = field(default_factory=set)
    language: str | None = None
    namer: FragmentNamer | None = None

    def add(self, records: dict[str, PageRecord], batch: list[str]) -> bool:
        """Append one batch's pages (renamed as the whole site names them, in `records`);
        False if its meta key list is not the first batch's."""
        for rel in batch:
            record = records[rel]
            if not record.indexed:
                self.pages.append(PageEntry(rel, record.digest))
                continue
            self.language = self.language or record.fragment.split("_", 1)[0]
            self.namer = self.namer or FragmentNamer(self.language)
            record = records[rel] = self.namer.named(record)
            self.meta_keys = self.meta_keys or record.meta_keys
            if record.meta_keys != self.meta_keys:
                return False
            self.seen_keys.update(record.page_meta)
            self.builder.add(len(self.fragments), record)
            self.fragments.append((record.fragment, record.word_count))
            self.filters.append(record.filters)
            fragment = self.bundle / "fragment" / f"{record.fragment}.pf_fragment"
            fragment.write_bytes(record.fragment_gz)
            size = len(record.fragment_gz)
            self.pages.append(
                PageEntry(rel, record.digest, record.fragment, size, record.word_count)
            )
        return True

    def finish(self, store: RecordStore, rels: list[str]) -> IndexState | None:
        """Write the chunks, filters and meta; None if no page is indexed (Pagefind would
        then index whole bodies) or a probe's meta key is in the batches' list."""
        meta_keys, language = self.meta_keys, self.language
        if meta_keys is None or language is None or meta_keys != tuple(sorted(self.seen_keys)):
            return None
        table = self.builder.table()
        chunk_meta, chunks = write_chunks(self.bundle, language, table, store)
        filter_files = write_filters(self.bundle, language, self.filters)
        write_meta(self.bundle, language, self.fragments, chunk_meta, filter_files, meta_keys)
        store.save([], keep=rels)
        pages = tuple(self.pages)
        return IndexState(language, pages, meta_keys, tuple(filter_files), chunks, table)


def index_in_batches(
    run_batch: RunBatch,
    rels: list[str],
    digests: dict[str, str],
    bundle: Path,
    store: RecordStore,
    ignore: frozenset[str],
) -> IndexState | None:
    """Index the site batch by batch and write the whole bundle into `bundle` (the first
    batch's bundle folder, moved there: its static files are kept); None if not modelled."""
    batches = [rels[at : at + BATCH_PAGES] for at in range(0, len(rels), BATCH_PAGES)]
    site = _Site(bundle)
    pool = concurrent.futures.ThreadPoolExecutor(RUNS_AT_ONCE)
    try:
        runs = [pool.submit(run_batch, batch, number) for number, batch in enumerate(batches)]
        for number, batch in enumerate(batches):
            folder = runs[number].result()
            records = records_from_bundle(
                folder, batch, digests, ignore=ignore, language=site.language
            )
            if records is None:
                return None
            if number == 0:
                folder.rename(bundle)
                clear_index_files(bundle)
            if not site.add(records, batch):
                return None
            store.save(records.values(), keep=None)
            if number:
                shutil.rmtree(folder.parent, ignore_errors=True)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # a batch not modelled: stop the rest
    return site.finish(store, rels)
