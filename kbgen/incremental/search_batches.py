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
bytes once, not one tuple per posting. The next batch's Pagefind runs while the current one is
split (a thread waiting on the child process), so the two cores both work.

Not modelled (None: the caller makes one full run): a batch whose meta key list differs from
the first batch's (the tails' meta markers would need renumbering), fragment name collisions,
no page with an indexed body, a bundle the record reader does not know.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kbgen.incremental.search_bundle import (
    SMALL_DELTAS,
    cbor_head,
    cbor_text,
    clear_index_files,
    uint_bytes,
    write_chunks,
    write_filters,
    write_meta,
)
from kbgen.incremental.search_records import PageRecord, RecordStore, records_from_bundle
from kbgen.incremental.search_state import IndexState, PageEntry, WordTable

BATCH_PAGES = 500  #: pages per Pagefind run (~0.1 GB of Pagefind memory)

#: runs Pagefind over these pages (site-relative paths) in a fresh scratch folder of the
#: given number; returns the bundle folder
RunBatch = Callable[[list[str], int], Path]


@dataclass(slots=True)
class _Postings:
    """One word's (or variant's) postings so far: encoded bytes, count, last page."""

    data: bytearray = field(default_factory=bytearray)
    count: int = 0
    last: int = 0

    def add(self, page: int, tail: bytes) -> None:
        delta = page - self.last
        self.data += (
            SMALL_DELTAS[delta] if delta < len(SMALL_DELTAS) else b"\x83" + uint_bytes(delta)
        )
        self.data += tail
        self.count += 1
        self.last = page

    def encoded(self) -> bytes:
        return cbor_head(4, self.count) + self.data


@dataclass(slots=True)
class TableBuilder:
    """The word table, built page by page in page order."""

    postings: dict[str, _Postings] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    variants: dict[str, dict[str, _Postings]] = field(default_factory=dict)

    def add(self, number: int, record: PageRecord) -> None:
        for word, tail, size in record.words:
            listed = self.postings.get(word)
            if listed is None:
                listed = self.postings[word] = _Postings()
                self.sizes[word] = 0
            listed.add(number, tail)
            self.sizes[word] += size
        for word, variant, tail in record.variants:
            forms = self.variants.setdefault(word, {})
            form = forms.get(variant)
            if form is None:
                form = forms[variant] = _Postings()
            form.add(number, tail)

    def table(self) -> WordTable:
        words = sorted(self.postings.keys() | self.variants.keys())
        empty = _Postings()
        entries = []
        for word in words:
            forms = self.variants.get(word, {})
            entries.append(
                b"\x83"
                + cbor_text(word)
                + self.postings.get(word, empty).encoded()
                + cbor_head(4, len(forms))
                + b"".join(b"\x82" + cbor_text(v) + p.encoded() for v, p in forms.items())
            )
        return WordTable(words, entries, [self.sizes.get(word, 0) for word in words])


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
    builder = TableBuilder()
    pages: list[PageEntry] = []
    filters: list[tuple[tuple[str, tuple[str, ...]], ...]] = []
    fragments: list[tuple[str, int]] = []
    meta_keys: tuple[str, ...] | None = None
    seen_keys: set[str] = set()
    language: str | None = None
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(run_batch, batches[0], 0) if batches else None
        for number, batch in enumerate(batches):
            assert pending is not None
            folder = pending.result()
            if number + 1 < len(batches):  # Pagefind works on the next batch meanwhile
                pending = pool.submit(run_batch, batches[number + 1], number + 1)
            records = records_from_bundle(folder, batch, digests, ignore=ignore, language=language)
            if records is None:
                return None
            if number == 0:
                folder.rename(bundle)
                clear_index_files(bundle)
            for rel in batch:
                record = records[rel]
                pages.append(_entry(record))
                if not record.indexed:
                    continue
                language = language or record.fragment.split("_", 1)[0]
                if meta_keys is None:
                    meta_keys = record.meta_keys
                if record.meta_keys != meta_keys:
                    return None
                seen_keys.update(record.page_meta)
                builder.add(len(fragments), record)
                fragments.append((record.fragment, record.word_count))
                filters.append(record.filters)
                (bundle / "fragment" / f"{record.fragment}.pf_fragment").write_bytes(
                    record.fragment_gz
                )
            store.save(records.values(), keep=None)
    return _finish(
        bundle, builder, pages, fragments, filters, meta_keys, seen_keys, language, store, rels
    )


def _entry(record: PageRecord) -> PageEntry:
    if not record.indexed:
        return PageEntry(record.rel, record.digest)
    size = len(record.fragment_gz)
    return PageEntry(record.rel, record.digest, record.fragment, size, record.word_count)


def _finish(
    bundle: Path,
    builder: TableBuilder,
    pages: list[PageEntry],
    fragments: list[tuple[str, int]],
    filters: Sequence[tuple[tuple[str, tuple[str, ...]], ...]],
    meta_keys: tuple[str, ...] | None,
    seen_keys: set[str],
    language: str | None,
    store: RecordStore,
    rels: list[str],
) -> IndexState | None:
    names = [name for name, _ in fragments]
    if meta_keys is None or language is None or len(set(names)) != len(names):
        return None  # no indexed page (Pagefind would index whole bodies), or a collision
    if meta_keys != tuple(sorted(seen_keys)):
        return None  # the probe page's meta keys are in the batches' list, no page's
    table = builder.table()
    chunk_meta, chunks = write_chunks(bundle, language, table, store)
    filter_files = write_filters(bundle, language, filters)
    write_meta(bundle, language, fragments, chunk_meta, filter_files, meta_keys)
    store.save([], keep=rels)
    return IndexState(language, tuple(pages), meta_keys, tuple(filter_files), chunks, table)
