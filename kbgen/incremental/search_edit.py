"""The search index after an edit of a few pages, from the last bundle's state.

Input: the last bundle's `IndexState` (its sorted word table with every word's encoded entry
and size, its pages, meta keys and files), and for each page whose HTML changed its old record
(the one the state was made with) and its new one (from a Pagefind run over the changed pages
only); the last bundle's folder, whose unchanged files are hard-linked. Output: the new bundle's
index files, byte for byte what `search_bundle.write_bundle` writes from every page's record
(and so what one full Pagefind run writes), and its `IndexState`.

Only an edit that keeps the set and order of the indexed pages, every changed page's meta keys,
filter values and URL is modelled (body and title edits, re-rendered linking pages): page
numbers, the meta key list and the filter files then stay as they were. Only the words whose
postings changed are decoded and encoded again (a changed page's posting is replaced in place;
untouched entries are copied as bytes), the chunks are cut again from the per-word sizes, and
every chunk, fragment and filter file whose bytes did not change is linked from the last
bundle. Anything else returns None and the caller writes the bundle from all records.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left
from dataclasses import dataclass, replace
from pathlib import Path

from kbgen.incremental.search_bundle import (
    FRAGMENT_HASH_LENGTH,
    clear_index_files,
    encode_entry,
    link_file,
    remapped,
    write_chunks,
    write_meta,
)
from kbgen.incremental.search_records import ChunkReader, PageRecord, RecordStore
from kbgen.incremental.search_state import IndexState, PageEntry, WordTable

#: a word's diacritic variants: (variant, its postings' (page number, tail)), in order
Forms = list[tuple[str, list[tuple[int, bytes]]]]


@dataclass(frozen=True, slots=True)
class _WordChange:
    """What one changed page now holds of one word (None/empty: nothing)."""

    page: int  #: the page's number among the indexed pages
    old_size: int  #: the page's share of the word's size before the edit
    posting: tuple[bytes, int] | None  #: (tail, size)
    forms: tuple[tuple[str, bytes], ...]  #: (variant, tail), the page's order


def apply_edit(
    state: IndexState, edits: dict[str, tuple[PageRecord, PageRecord]]
) -> IndexState | None:
    """The state after replacing each edited page's old record by its new one (rel ->
    (old, new)); None if the edit is not one this module models. The word table is updated
    in place."""
    numbers: dict[str, int] = {}
    for page in state.pages:
        if page.fragment:
            numbers[page.rel] = len(numbers)
    by_rel = {page.rel: page for page in state.pages}
    if _names_collide(state, edits):
        return None
    changes: dict[str, list[_WordChange]] = {}
    for rel, (old, new) in edits.items():
        entry = by_rel.get(rel)
        if entry is not None and not (old.indexed or new.indexed or entry.fragment):
            continue  # left out of the index before and after (a list page without a body)
        if entry is None or not _same_shape(entry, old, new, state.meta_keys):
            return None
        old, new = remapped(old, state.meta_keys), remapped(new, state.meta_keys)
        for word, change in _word_changes(numbers[rel], old, new).items():
            changes.setdefault(word, []).append(change)
    for word, listed in changes.items():
        if not _update_word(state.table, word, listed):
            return None
    return replace(state, pages=tuple(_entry(page, edits) for page in state.pages))


def _names_collide(state: IndexState, edits: dict[str, tuple[PageRecord, PageRecord]]) -> bool:
    """An edited page's old or new fragment name shares its 7 digits with another page's:
    which of them gets the longer name depends on page order (`FragmentNamer`)."""
    width = len(state.language) + 1 + FRAGMENT_HASH_LENGTH
    others = {p.fragment[:width] for p in state.pages if p.fragment and p.rel not in edits}
    olds = [old.fragment[:width] for old, _ in edits.values() if old.indexed]
    news = [new.fragment for _, new in edits.values() if new.indexed]
    return (
        len(set(news)) != len(news)
        or any(len(name) != width for name in news)
        or not others.isdisjoint(news)
        or not others.isdisjoint(olds)
    )


def _entry(page: PageEntry, edits: dict[str, tuple[PageRecord, PageRecord]]) -> PageEntry:
    if page.rel not in edits:
        return page
    new = edits[page.rel][1]
    if not new.indexed:
        return PageEntry(page.rel, new.digest)
    return PageEntry(page.rel, new.digest, new.fragment, len(new.fragment_gz), new.word_count)


def _same_shape(entry: PageEntry, old: PageRecord, new: PageRecord, keys: tuple[str, ...]) -> bool:
    """The edit keeps the page indexed, its URL, meta keys and filter values."""
    return (
        old.indexed
        and new.indexed
        and entry.fragment == old.fragment
        and old.url == new.url
        and old.page_meta == new.page_meta
        and set(old.page_meta) <= set(keys)
        and old.filters == new.filters
    )


def _word_changes(number: int, old: PageRecord, new: PageRecord) -> dict[str, _WordChange]:
    """The words whose posting or variants on this page differ, with what the page now has."""
    old_postings = {word: tail for word, tail, _ in old.words}
    old_sizes = {word: size for word, _, size in old.words}
    new_postings = {word: (tail, size) for word, tail, size in new.words}
    old_forms = _forms_by_word(old)
    new_forms = _forms_by_word(new)
    changed: dict[str, _WordChange] = {}
    for word in old_postings.keys() | new_postings.keys() | old_forms.keys() | new_forms.keys():
        posting = new_postings.get(word)
        forms = new_forms.get(word, ())
        if (
            old_postings.get(word) != (posting[0] if posting else None)
            or old_forms.get(word, ()) != forms
        ):
            changed[word] = _WordChange(number, old_sizes.get(word, 0), posting, forms)
    return changed


def _forms_by_word(record: PageRecord) -> dict[str, tuple[tuple[str, bytes], ...]]:
    forms: dict[str, list[tuple[str, bytes]]] = {}
    for word, variant, tail in record.variants:
        forms.setdefault(word, []).append((variant, tail))
    return {word: tuple(listed) for word, listed in forms.items()}


def _update_word(table: WordTable, word: str, changes: list[_WordChange]) -> bool:
    """Re-encode one word's entry with these pages' postings replaced; False if the order
    of its variants cannot be told without the other pages' records."""
    at = bisect_left(table.words, word)
    present = at < len(table.words) and table.words[at] == word
    pages, tails, forms = _parse_entry(table.entries[at]) if present else ([], [], [])
    changed = {change.page for change in changes}
    postings = [
        (page, tail) for page, tail in zip(pages, tails, strict=True) if page not in changed
    ]
    added = sorted((c.page, c.posting[0]) for c in changes if c.posting is not None)
    if added:
        postings = list(heapq.merge(postings, added, key=lambda posting: posting[0]))
    merged = _merged_forms(forms, changes, changed)
    if merged is None:
        return False
    if not postings and not merged:
        if present:
            del table.words[at], table.entries[at], table.sizes[at]
        return True
    entry = encode_entry(word, postings, merged)
    # the word's size without re-reading every posting: the changed pages' old shares out,
    # their new ones in
    size = (table.sizes[at] if present else 0) + sum(
        (c.posting[1] if c.posting is not None else 0) - c.old_size for c in changes
    )
    if present:
        table.entries[at], table.sizes[at] = entry, size
    else:
        table.words.insert(at, word)
        table.entries.insert(at, entry)
        table.sizes.insert(at, size)
    return True


def _merged_forms(forms: Forms, changes: list[_WordChange], pages: set[int]) -> Forms | None:
    """The variants after the edit, in order of first appearance (page number, then the
    order within that page); None when a variant's first page moved to an unchanged page
    that is the first page of another variant too (their order is in that page's record)."""
    lists: dict[str, list[tuple[int, bytes]]] = {}
    rank: dict[str, int] = {}
    moved: set[str] = set()
    for index, (form, listed) in enumerate(forms):
        kept = [posting for posting in listed if posting[0] not in pages]
        if kept:
            lists[form] = kept
            rank[form] = index
            if kept[0][0] != listed[0][0]:
                moved.add(form)
    order_on: dict[int, dict[str, int]] = {}
    for change in changes:
        order_on[change.page] = {form: index for index, (form, _) in enumerate(change.forms)}
        for form, tail in change.forms:
            lists.setdefault(form, []).append((change.page, tail))
    for form, listed in lists.items():
        listed.sort(key=lambda posting: posting[0])
        if listed[0][0] in pages:  # first seen on a changed page: that page's order
            rank[form] = order_on[listed[0][0]][form]
    firsts = [listed[0][0] for listed in lists.values()]
    for form in moved:
        first = lists[form][0][0]
        if first not in pages and firsts.count(first) > 1:
            return None
    order = sorted(lists, key=lambda form: (lists[form][0][0], rank[form]))
    return [(form, lists[form]) for form in order]


def _parse_entry(entry: bytes) -> tuple[list[int], list[bytes], Forms]:
    """A word's page numbers, tails and variants."""
    reader = ChunkReader(entry)
    reader.head(4)
    reader.text()
    pages, tails = reader.pages_and_tails()
    forms: Forms = []
    for _ in range(reader.head(4)):
        reader.head(4)
        form = reader.text()
        numbers, form_tails = reader.pages_and_tails()
        forms.append((form, list(zip(numbers, form_tails, strict=True))))
    return pages, tails, forms


def write_edited(
    bundle: Path,
    state: IndexState,
    last: IndexState,
    fresh: dict[str, PageRecord],
    previous: Path | None,
    store: RecordStore | None,
) -> IndexState | None:
    """Write `state`'s index files into `bundle`: the changed pages' fragments from `fresh`,
    every other fragment, the filters and the unchanged chunks linked from `previous` (the
    bundle `last` describes). None if a file to link is not there as recorded."""
    clear_index_files(bundle)
    reuse = {chunk.key: chunk for chunk in last.chunks}
    chunk_meta, chunks = write_chunks(bundle, state.language, state.table, store, reuse, previous)
    fragments: list[tuple[str, int]] = []
    into = bundle / "fragment"
    for page in state.pages:
        if not page.fragment:
            continue
        fragments.append((page.fragment, page.word_count))
        name = f"{page.fragment}.pf_fragment"
        record = fresh.get(page.rel)
        if record is not None:
            (into / name).write_bytes(record.fragment_gz)
        elif not link_file(previous, f"fragment/{name}", page.fragment_size, into, name):
            return None
    for item in state.filters:
        name = f"{item.name}.pf_filter"
        if not link_file(previous, f"filter/{name}", item.size, bundle / "filter", name):
            return None
    write_meta(bundle, state.language, fragments, chunk_meta, state.filters, state.meta_keys)
    return replace(state, chunks=chunks)
