"""The Pagefind 1.5.2 bundle written from per-page records, as Pagefind itself writes it.

Input: every HTML page's `PageRecord` in Pagefind's walk order (or, after an edit, the last
bundle's `IndexState` with its word table updated) and a bundle folder whose static files
(JS, WebAssembly, pagefind-entry.json) a Pagefind run wrote; optionally the last bundle's
folder, whose unchanged files are hard-linked instead of written. Output: that folder's index
chunks, fragments, filters and meta file, byte for byte what one full run +
`search.canonicalize_bundle` writes (the rules are listed in search_index.py's docstring), and
the `IndexState` of what was written.
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from stat import S_ISREG

from kbgen import search
from kbgen.incremental.search_records import VERIFIED_VERSION, PageRecord, RecordStore
from kbgen.incremental.search_state import BundleFile, IndexState, PageEntry, WordTable

CHUNK_SIZE = 20_000  #: Pagefind's word-chunk threshold (postings + positions per chunk)
FRAGMENT_HASH_LENGTH = 7  #: hex digits after "<lang>_" in fragment and chunk names


def uint_bytes(value: int) -> bytes:
    if value < 24:
        return bytes((value,))
    for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if value < 1 << (8 * size):
            return bytes((info,)) + value.to_bytes(size, "big")
    raise ValueError("integer too large")


def cbor_head(major: int, value: int) -> bytes:
    encoded = bytearray(uint_bytes(value))
    encoded[0] |= major << 5
    return bytes(encoded)


def cbor_text(value: str) -> bytes:
    encoded = value.encode("utf-8")
    return cbor_head(3, len(encoded)) + encoded


SMALL_DELTAS = [b"\x83" + uint_bytes(n) for n in range(4096)]


@dataclass(slots=True)
class Postings:
    """One word's (or variant's) postings, encoded as they are added in page order: Pagefind's
    `[page delta, locs, meta_locs]` entries, the delta written here, the rest the page's
    tail."""

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


def postings_bytes(postings: list[tuple[int, bytes]]) -> bytes:
    listed = Postings()
    for page, tail in postings:
        listed.add(page, tail)
    return listed.encoded()


def remapped(record: PageRecord, meta_keys: tuple[str, ...]) -> PageRecord:
    """The record with its meta markers renumbered for the site's meta key list."""
    if record.meta_keys == meta_keys:
        return record
    position = {key: index for index, key in enumerate(meta_keys)}
    old = record.meta_keys

    def tail(raw: bytes) -> bytes:
        _locs, end = search.cbor_decode(raw)
        meta_locs, _ = search.cbor_decode(raw, end)
        assert isinstance(meta_locs, list)
        moved = [
            -position[old[-item - 1]] - 1 if isinstance(item, int) and item < 0 else item
            for item in meta_locs
        ]
        return raw[:end] + search.cbor_encode(moved)

    return replace(
        record,
        meta_keys=meta_keys,
        words=tuple((w, tail(t), s) for w, t, s in record.words),
        variants=tuple((w, v, tail(t)) for w, v, t in record.variants),
    )


def write_bundle(
    records: Sequence[PageRecord], bundle: Path, store: RecordStore | None = None
) -> tuple[dict[str, PageRecord], IndexState] | None:
    """Replace the index files of `bundle` (a Pagefind output folder, whose static files
    stay) with the index of `records` (every HTML page, in walk order). Returns the records
    whose meta markers were renumbered or fragments renamed (to be saved) and the state of
    the bundle written, or None if no page is indexed."""
    indexed = [r for r in records if r.indexed]
    if not indexed:
        return None
    language = indexed[0].fragment.split("_", 1)[0]
    meta_keys = tuple(sorted({key for r in indexed for key in r.page_meta}))
    namer = FragmentNamer(language)
    renumbered: dict[str, PageRecord] = {}
    for number, record in enumerate(indexed):
        moved = namer.named(remapped(record, meta_keys))
        if moved is not record:
            indexed[number] = renumbered[record.rel] = moved
    records = [renumbered.get(r.rel, r) for r in records]
    table = word_table(indexed)
    clear_index_files(bundle)
    chunk_meta, chunks = write_chunks(bundle, language, table, store)
    for record in indexed:
        (bundle / "fragment" / f"{record.fragment}.pf_fragment").write_bytes(record.fragment_gz)
    filters = write_filters(bundle, language, [r.filters for r in indexed])
    fragments = [(r.fragment, r.word_count) for r in indexed]
    write_meta(bundle, language, fragments, chunk_meta, filters, meta_keys)
    state = IndexState(language, _page_entries(records), meta_keys, tuple(filters), chunks, table)
    return renumbered, state


def clear_index_files(bundle: Path) -> None:
    """Empty index/, fragment/ and filter/ and remove the meta file: the static files stay."""
    for folder in ("index", "fragment", "filter"):
        shutil.rmtree(bundle / folder, ignore_errors=True)
        (bundle / folder).mkdir()
    for stale in bundle.glob("pagefind.*.pf_meta"):
        stale.unlink()


def write_meta(
    bundle: Path,
    language: str,
    fragments: list[tuple[str, int]],
    chunk_meta: list[list[str]],
    filters: Sequence[BundleFile],
    meta_keys: tuple[str, ...],
) -> None:
    """The meta file (pages, chunks, filters, meta keys) and pagefind-entry.json naming it."""
    meta: list[object] = [
        VERIFIED_VERSION,
        [list(pair) for pair in fragments],
        chunk_meta,
        [[f.key, f.name] for f in filters],
        [],
        list(meta_keys),
    ]
    encoded = search.encode_index(meta)  # once: it names the file and is its content
    meta_name = search.unique_name(language, encoded, set(), search.META_HASH_LENGTH)
    (bundle / f"pagefind.{meta_name}.pf_meta").write_bytes(search.compress(encoded))
    entry_path = bundle / "pagefind-entry.json"
    entry = json.loads(entry_path.read_text("utf-8"))
    info = entry["languages"].get(language) or next(iter(entry["languages"].values()))
    entry["languages"] = {language: {**info, "hash": meta_name, "page_count": len(fragments)}}
    entry_path.write_text(json.dumps(entry, ensure_ascii=False, separators=(",", ":")), "utf-8")


# -- the word table and its chunks ------------------------------------------------------


@dataclass(slots=True)
class TableBuilder:
    """The word table, built page by page in page order (postings kept as encoded bytes, so
    Python holds the index once, not one tuple per posting)."""

    postings: dict[str, Postings] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    variants: dict[str, dict[str, Postings]] = field(default_factory=dict)

    def add(self, number: int, record: PageRecord) -> None:
        for word, tail, size in record.words:
            listed = self.postings.get(word)
            if listed is None:
                listed = self.postings[word] = Postings()
                self.sizes[word] = 0
            listed.add(number, tail)
            self.sizes[word] += size
        for word, variant, tail in record.variants:
            forms = self.variants.setdefault(word, {})
            form = forms.get(variant)
            if form is None:
                form = forms[variant] = Postings()
            form.add(number, tail)

    def table(self) -> WordTable:
        words = sorted(self.postings.keys() | self.variants.keys())
        empty = Postings()
        entries = [
            entry_bytes(
                word,
                self.postings.get(word, empty).encoded(),
                [(v, p.encoded()) for v, p in self.variants.get(word, {}).items()],
            )
            for word in words
        ]
        return WordTable(words, entries, [self.sizes.get(word, 0) for word in words])


def word_table(indexed: list[PageRecord]) -> WordTable:
    """Every word's entry and size over these pages (page numbers: their list positions)."""
    builder = TableBuilder()
    for number, record in enumerate(indexed):
        builder.add(number, record)
    return builder.table()


def entry_bytes(word: str, postings: bytes, forms: list[tuple[str, bytes]]) -> bytes:
    """Pagefind's `[word, postings, [[variant, postings], ...]]` from encoded posting lists."""
    return (
        b"\x83"
        + cbor_text(word)
        + postings
        + cbor_head(4, len(forms))
        + b"".join(b"\x82" + cbor_text(form) + listed for form, listed in forms)
    )


def encode_entry(
    word: str,
    postings: list[tuple[int, bytes]],
    forms: list[tuple[str, list[tuple[int, bytes]]]],
) -> bytes:
    """Pagefind's `[word, postings, [[variant, postings], ...]]` for one word."""
    return entry_bytes(
        word, postings_bytes(postings), [(form, postings_bytes(listed)) for form, listed in forms]
    )


def cut(table: WordTable) -> list[tuple[int, int]]:
    """The word ranges of the chunks: a chunk ends where its running size reaches CHUNK_SIZE."""
    ranges: list[tuple[int, int]] = []
    start = running = 0
    for index, size in enumerate(table.sizes):
        running += size
        if running >= CHUNK_SIZE:
            ranges.append((start, index + 1))
            start, running = index + 1, 0
    if start < len(table.sizes):
        ranges.append((start, len(table.sizes)))
    return ranges


def _prefixes(a: str, b: str) -> tuple[str, str]:
    """Pagefind's chunk bounds: each side's shortest prefix that tells them apart."""
    common = 0
    for x, y in zip(b, a, strict=False):
        if x != y:
            break
        common += 1
    return a[: common + 1], b[: common + 1]


def _bounds(table: WordTable, ranges: list[tuple[int, int]]) -> list[list[str]]:
    bounds = [[table.words[start], table.words[end - 1]] for start, end in ranges]
    for left, right in itertools.pairwise(bounds):
        shorter, right[0] = _prefixes(left[1], right[0])
        # Pagefind 1.5 keeps the whole last word when its prefix would sort before the
        # chunk's own (already shortened) first bound (seen: "by" | "cap" stays "by" in a
        # chunk from "bindi"; 1.3's get_prefixes would give "b")
        if shorter >= left[0]:
            left[1] = shorter
    return bounds


def _sha1_name(language: str, data: bytes) -> str:
    # Pagefind formats each digest byte with {:x}: no zero padding
    return f"{language}_" + "".join(format(byte, "x") for byte in hashlib.sha1(data).digest())


def _short_name(full: str, language: str, taken: set[str]) -> str:
    """Pagefind's file name: 7 hex digits, one more while an earlier file has the name."""
    name = full[: len(language) + 1 + FRAGMENT_HASH_LENGTH]
    while name in taken and len(name) < len(full):
        name = full[: len(name) + 1]
    taken.add(name)
    return name


class FragmentNamer:
    """Fragment names as one Pagefind run over the whole site gives them, page by page.

    A fragment is named by the SHA-1 of its content; when two pages' 7-digit names collide
    (seen at 10,000 pages), the later page's name is one digit longer. A run over a batch or
    over the changed pages does not know the other pages' names, so they are given again here
    in page order.
    """

    def __init__(self, language: str) -> None:
        self.language = language
        self.taken: set[str] = set()

    def named(self, record: PageRecord) -> PageRecord:
        """The record with its fragment's site-wide name (the same record if unchanged)."""
        raw = gzip.decompress(record.fragment_gz)
        if not raw.startswith(search.SIGNATURE):
            raise ValueError("fragment without Pagefind's signature")
        full = _sha1_name(self.language, raw[len(search.SIGNATURE) :])
        name = _short_name(full, self.language, self.taken)
        return record if name == record.fragment else replace(record, fragment=name)


def write_chunks(
    bundle: Path,
    language: str,
    table: WordTable,
    store: RecordStore | None,
    reuse: dict[str, BundleFile] | None = None,
    previous: Path | None = None,
) -> tuple[list[list[str]], tuple[BundleFile, ...]]:
    """Cut the table into chunks and write them: a chunk the last bundle (`previous`, whose
    chunks `reuse` lists by content) already holds is hard-linked, one the cache holds is
    copied, any other compressed. Returns the meta file's chunk list and the chunk files."""
    ranges = cut(table)
    taken: set[str] = set()
    new: dict[str, bytes] = {}
    written: list[BundleFile] = []
    result: list[list[str]] = []
    for (start, end), bound in zip(ranges, _bounds(table, ranges), strict=True):
        data = b"\x81" + cbor_head(4, end - start) + b"".join(table.entries[start:end])
        name = _short_name(_sha1_name(language, data), language, taken)
        raw = search.SIGNATURE + data
        key = hashlib.sha256(raw).hexdigest()
        target = bundle / "index" / f"{name}.pf_index"
        old = (reuse or {}).get(key)
        if old is not None and link_file(
            previous, f"index/{old.name}.pf_index", old.size, target.parent, target.name
        ):
            written.append(BundleFile(key, name, old.size))
        else:
            packed = store.load_chunk(raw) if store is not None else None
            if packed is None:
                packed = search.compress(raw, search.CHUNK_LEVEL)
            new[key] = packed
            target.write_bytes(packed)
            written.append(BundleFile(key, name, len(packed)))
        result.append([*bound, name])
    if store is not None:
        store.save_chunks(new, keep={f.key for f in written})
    return result, tuple(written)


def link_file(previous: Path | None, rel: str, size: int, folder: Path, name: str) -> bool:
    """Hard-link `previous/rel` as `folder/name` if it is a regular file of the recorded size.

    The last bundle is this program's own output (the live site's, or serve's last index), not
    the cache; its files are named by a hash of their content, and the size is checked too.
    (Plain strings, not Paths: this runs once per page of the site on every edit.)
    """
    if previous is None:
        return False
    source = f"{previous}/{rel}"
    try:
        found = os.lstat(source)
        if not S_ISREG(found.st_mode) or found.st_size != size:
            return False
        os.link(source, f"{folder}/{name}")
    except OSError:
        return False
    return True


def write_filters(
    bundle: Path, language: str, pages: Sequence[tuple[tuple[str, tuple[str, ...]], ...]]
) -> list[BundleFile]:
    """The filter files for these filter values (one item per indexed page, in order)."""
    values: dict[str, dict[str, list[int]]] = {}
    for number, filters in enumerate(pages):
        for name, listed in filters:
            for value in listed:
                values.setdefault(name, {}).setdefault(value, []).append(number)
    taken: set[str] = set()
    result: list[BundleFile] = []
    for name in sorted(values):
        data = [name, [[value, pages] for value, pages in sorted(values[name].items())]]
        file_name = search.unique_name(
            language, search.encode_index(data), taken, search.FILTER_HASH_LENGTH
        )
        path = bundle / "filter" / f"{file_name}.pf_filter"
        search.write_index_file(path, data)
        result.append(BundleFile(name, file_name, path.stat().st_size))
    return result


def bundle_state(
    bundle: Path, records: Sequence[PageRecord]
) -> tuple[IndexState, dict[str, bytes]]:
    """The state of a bundle Pagefind wrote whole (`records`: every page's, split from it),
    and its chunks for the cache (SHA-256 of the content, signature included -> gzip bytes).
    """
    entry = json.loads((bundle / "pagefind-entry.json").read_text("utf-8"))
    ((language, info),) = entry["languages"].items()
    meta = search.read_index_file(bundle / f"pagefind.{info['hash']}.pf_meta")
    if not isinstance(meta, list) or len(meta) != 6:
        raise ValueError("meta layout")
    files: dict[str, bytes] = {}
    chunks: list[BundleFile] = []
    for _first, _last, name in meta[2]:
        packed = (bundle / "index" / f"{name}.pf_index").read_bytes()
        key = hashlib.sha256(gzip.decompress(packed)).hexdigest()
        files[key] = packed
        chunks.append(BundleFile(key, str(name), len(packed)))
    filters = tuple(
        BundleFile(str(key), str(name), (bundle / "filter" / f"{name}.pf_filter").stat().st_size)
        for key, name in meta[3]
    )
    indexed = [r for r in records if r.indexed]
    table = word_table(indexed)
    meta_keys = tuple(str(key) for key in meta[5])
    state = IndexState(
        str(language), _page_entries(records), meta_keys, filters, tuple(chunks), table
    )
    return state, files


def _page_entries(records: Sequence[PageRecord]) -> tuple[PageEntry, ...]:
    return tuple(
        PageEntry(r.rel, r.digest, r.fragment, len(r.fragment_gz), r.word_count)
        if r.indexed
        else PageEntry(r.rel, r.digest)
        for r in records
    )
