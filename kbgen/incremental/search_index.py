"""Incremental search indexing: Pagefind over the changed pages only, the bundle written here.

Input: a folder holding the complete rendered site (the staging folder of a build, or serve's
snapshot), and the build cache (`CacheDir`, untrusted: every read is authenticated).
Output: `<site>/pagefind/`, byte for byte the bundle that `kbgen.search.index_site` (one full
Pagefind run, then `canonicalize_bundle`) writes for the same folder; per-page search records
and compressed index chunks in `<cache>/v1/search/`.

How. Pagefind stays the tokenizer, stemmer and producer of every page's ranking data. A page
whose HTML (by SHA-256) has a valid record from an earlier build is not given to Pagefind
again; the other pages are hard-linked, under their own relative paths, into a scratch folder
that Pagefind indexes (~0.1 s for a page). That small bundle is split into per-page records
(the page's word postings with positions and weights, its fragment file, filter values, word
count and meta keys), and the whole bundle is then written from all pages' records,
replicating what Pagefind 1.5.2 does over a whole site:

* page numbers: the order Pagefind's directory walk finds the indexed pages, which is the
  depth-first, readdir-order walk of the site folder (`site_pages`);
* the index: every word's postings in page order, page numbers as deltas, cut into chunks
  when the running sum of `len(locs) + len(meta_locs) + 1` over a chunk's postings reaches
  20,000; chunk bounds are shortest distinguishing prefixes; names are the first 7 hex digits
  of the (unpadded) SHA-1 of the chunk's CBOR;
* diacritic variants of a word: their own posting lists, in order of first appearance;
* meta positions: markers -(k+1) index the sorted list of all pages' meta keys, so they are
  renumbered when that list changes;
* filters, meta and pagefind-entry.json: as `canonicalize_bundle` writes them.

The version fence: the writer runs only for the Pagefind version it was verified against
(`VERIFIED_VERSION`) and for bundles of one language without sort keys; anything else, or any
page record that fails to verify, falls back to Pagefind over the pages concerned or, for the
cases the writer does not model, to one full Pagefind run. A full run (the first build, or
when most pages changed) derives every page's record from its bundle for the next build.

Records are not pickles: each is a sealed envelope (HMAC under the cache key, bound to the
page's path and the SHA-256 of its HTML, `cache.seal_bytes`) around JSON and raw CBOR bytes
that are only ever sliced and copied into the index, never executed. A record that is
missing, forged, truncated, too large or for other HTML means "give that page to Pagefind".
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import itertools
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from kbgen import search
from kbgen.incremental.cache import CacheDir, read_regular, write_atomic
from kbgen.incremental.sealing import seal_bytes, unseal_bytes
from kbgen.search import SearchIndexError

VERIFIED_VERSION = "1.5.2"  #: the Pagefind whose bundle layout this writer reproduces
CHUNK_SIZE = 20_000  #: Pagefind's word-chunk threshold (postings + positions per chunk)
FRAGMENT_HASH_LENGTH = 7  #: hex digits after "<lang>_" in fragment and chunk names
FULL_RUN_SHARE = 0.5  #: more than this share of pages without a record: one full run
RECORD_LIMIT = 64 << 20  #: a record file larger than this is not ours
SENTINEL_NAME = "kbgen-search-probe.html"  #: the scratch run's always-indexed page
_SENTINEL_URL = "/" + SENTINEL_NAME


@dataclass(frozen=True, slots=True)
class PageRecord:
    """What the index holds of one HTML page, independent of the other pages.

    A posting tail is the CBOR of the page's `locs` and `meta_locs` arrays for one word: the
    part of Pagefind's `[page_delta, locs, meta_locs]` entry that does not depend on where
    the page sits in the site. `size` is the page's share of the chunk threshold.
    """

    rel: str  #: the HTML file, relative to the site, "/"-separated
    digest: str  #: SHA-256 of the HTML bytes
    indexed: bool  #: False: Pagefind leaves the page out (no data-pagefind-body, no words)
    url: str = ""
    fragment: str = ""  #: the fragment's name ("en_1a2b3c4")
    fragment_gz: bytes = b""  #: the fragment file as Pagefind wrote it
    word_count: int = 0
    filters: tuple[tuple[str, tuple[str, ...]], ...] = ()
    page_meta: tuple[str, ...] = ()  #: this page's meta keys (title, summary, ...)
    meta_keys: tuple[str, ...] = ()  #: the list the tails' meta markers index into
    words: tuple[tuple[str, bytes, int], ...] = ()  #: (word, tail, size), word order
    variants: tuple[tuple[str, str, bytes], ...] = ()  #: (word, variant, tail)


@dataclass(frozen=True, slots=True)
class IndexRun:
    """What one call did: for tests and the benchmark's verbose output."""

    mode: str  #: "full" (one Pagefind run over the site) or "incremental"
    pages: int  #: HTML pages in the site
    reindexed: int  #: pages given to Pagefind
    reason: str = ""  #: why a full run was chosen


# -- entry point ------------------------------------------------------------------------


def index_site(site_dir: Path, cache: CacheDir | None, *, incremental: bool = True) -> IndexRun:
    """Index site_dir into site_dir/pagefind/, re-running Pagefind only where HTML changed."""
    binary = search.pagefind_binary()
    if binary is None or cache is None or not incremental:
        search.index_site(site_dir)
        return IndexRun("full", 0, 0, "no cache" if cache is None else "not incremental")
    site_dir = site_dir.absolute()
    with search.INDEX_LOCK:
        try:
            return _index(binary, site_dir, cache)
        except OSError as exc:
            full = search.disk_full(site_dir)
            raise SearchIndexError(
                f"could not write the search index into {site_dir}: {full or exc}; index again"
            ) from None


def _index(binary: Path, site_dir: Path, cache: CacheDir) -> IndexRun:
    rels = site_pages(site_dir)
    digests = {rel: _file_digest(site_dir / rel) for rel in rels}
    store = RecordStore(cache)
    known = {rel: store.load(rel, digest) for rel, digest in digests.items()}
    missing = [rel for rel in rels if known[rel] is None]
    reason = _full_run_reason(rels, missing)
    if reason is None:
        written = _incremental(binary, site_dir, rels, digests, known, missing, store)
        if written is not None:
            return IndexRun("incremental", len(rels), len(missing))
        reason = "the writer does not model this bundle"
    _full(binary, site_dir, rels, digests, store)
    return IndexRun("full", len(rels), len(rels), reason)


def _full_run_reason(rels: list[str], missing: list[str]) -> str | None:
    if any(part.startswith(".") for rel in rels for part in rel.split("/")):
        return "a hidden file or folder holds HTML"
    if len(missing) > FULL_RUN_SHARE * max(len(rels), 1):
        return f"{len(missing)} of {len(rels)} pages have no record"
    return None


def _full(
    binary: Path, site_dir: Path, rels: list[str], digests: dict[str, str], store: RecordStore
) -> None:
    """One Pagefind run over the whole site (exactly search.index_site), then records."""
    fresh = site_dir / f".{search.BUNDLE_DIR}.new-{os.getpid()}"
    shutil.rmtree(fresh, ignore_errors=True)
    try:
        search.run_pagefind(binary, site_dir, fresh)
        canonical = search.canonicalize_bundle(fresh)
        records = records_from_bundle(fresh, rels, digests) if canonical else None
        if records is not None:
            store.save(records.values(), keep=rels)
            store.save_chunks(_chunk_files(fresh))
        search.replace_bundle(fresh, site_dir / search.BUNDLE_DIR)
    finally:
        shutil.rmtree(fresh, ignore_errors=True)


def _incremental(
    binary: Path,
    site_dir: Path,
    rels: list[str],
    digests: dict[str, str],
    known: dict[str, PageRecord | None],
    missing: list[str],
    store: RecordStore,
) -> bool | None:
    """Pagefind over `missing` only, the bundle from every page's record; None to fall back."""
    scratch = Path(tempfile.mkdtemp(prefix=".kbgen-search-", dir=site_dir.parent))
    try:
        pages = scratch / "pages"
        language = _language(known.values())
        _stage_pages(site_dir, pages, missing, language)
        bundle = scratch / "bundle"
        search.run_pagefind(binary, pages, bundle)
        fresh = records_from_bundle(
            bundle, missing, digests, ignore=frozenset({_SENTINEL_URL}), language=language
        )
        if fresh is None:
            return None
        records = {rel: known[rel] or fresh[rel] for rel in rels}
        ordered = [records[rel] for rel in rels]  # rels are in walk order
        if not any(record is not None and record.indexed for record in ordered):
            return None  # no data-pagefind-body left: Pagefind would index whole bodies
        written = write_bundle(ordered, bundle, store)
        if written is None:
            return None
        store.save([written.get(rel, fresh[rel]) for rel in missing], keep=rels)
        store.save([r for rel, r in written.items() if rel not in fresh], keep=None)
        search.replace_bundle(bundle, site_dir / search.BUNDLE_DIR)
        return True
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _language(records: Iterable[PageRecord | None]) -> str:
    for record in records:
        if record is not None and record.indexed:
            return record.fragment.split("_", 1)[0]
    return "en"


def _stage_pages(site_dir: Path, pages: Path, rels: list[str], language: str) -> None:
    """The pages Pagefind must read, under their own paths, plus an always-indexed probe.

    The probe carries data-pagefind-body, so Pagefind skips pages without one exactly as it
    does over the whole site (which always has such pages: checked by the caller), and a run
    over zero changed pages still writes a bundle (the static files come from it).
    """
    pages.mkdir()
    for rel in rels:
        target = pages / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(site_dir / rel, target)
        except OSError:
            shutil.copyfile(site_dir / rel, target)
    probe = (
        f'<!DOCTYPE html><html lang="{language}"><head><title>probe</title></head><body>'
        "<main data-pagefind-body><p>kbgenprobe</p></main></body></html>"
    )
    (pages / SENTINEL_NAME).write_text(probe, "utf-8")


# -- the site's pages, in Pagefind's order -------------------------------------------------


def site_pages(site_dir: Path) -> list[str]:
    """Every *.html file under site_dir in the order Pagefind's walk finds them.

    Pagefind walks the folder depth first, each directory's entries in the order the file
    system lists them (no sorting), and numbers the indexed pages in that order; os.scandir
    lists them in the same order.
    """
    found: list[str] = []
    _walk(site_dir, "", found)
    return found


def _walk(folder: Path, prefix: str, found: list[str]) -> None:
    with os.scandir(folder) as entries:
        listed = list(entries)
    for entry in listed:
        if entry.is_dir(follow_symlinks=False):
            if not (prefix == "" and entry.name == search.BUNDLE_DIR):
                _walk(Path(entry.path), f"{prefix}{entry.name}/", found)
        elif entry.name.endswith(".html"):
            found.append(prefix + entry.name)


def page_url(rel: str) -> str:
    """Pagefind's URL for a page: "/" + its path, without a trailing index.html."""
    return "/" + (rel[: -len("index.html")] if rel.endswith("index.html") else rel)


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- reading a bundle into records --------------------------------------------------------

#: A CBOR integer (major type 0 or 1, up to 4 argument bytes) and an array head (up to 2)
_INT = (
    rb"(?:[\x00-\x17\x20-\x37]|[\x18\x38][\x00-\xff]"
    rb"|[\x19\x39][\x00-\xff]{2}|[\x1a\x3a][\x00-\xff]{4})"
)
_ARRAY = rb"(?:[\x80-\x97]|\x98[\x00-\xff]|\x99[\x00-\xff]{2})"
#: One posting, [page_delta, locs, meta_locs]: groups delta, tail, locs head, meta head.
#: Integer and array heads have disjoint first bytes, so `_INT*` stops exactly at the end
#: of each array and the match is the posting's exact extent.
_POSTING = re.compile(
    rb"\x83(" + _INT + rb")((" + _ARRAY + rb")" + _INT + rb"*(" + _ARRAY + rb")" + _INT + rb"*)"
)
_POSTINGS = re.compile(rb"(?:" + _POSTING.pattern + rb")*")


class _BundleFormatError(ValueError):
    """The bundle is not laid out as this module knows: fall back to a full run."""


def records_from_bundle(
    bundle: Path,
    rels: list[str],
    digests: dict[str, str],
    *,
    ignore: frozenset[str] = frozenset(),
    language: str | None = None,
) -> dict[str, PageRecord] | None:
    """Split a Pagefind bundle into one record per page in `rels`; None if not modelled."""
    try:
        return _records_from_bundle(bundle, rels, digests, ignore, language)
    except (_BundleFormatError, SearchIndexError, OSError, ValueError, IndexError, KeyError):
        return None


def _records_from_bundle(
    bundle: Path,
    rels: list[str],
    digests: dict[str, str],
    ignore: frozenset[str],
    language: str | None,
) -> dict[str, PageRecord]:
    entry = json.loads((bundle / "pagefind-entry.json").read_text("utf-8"))
    languages = entry.get("languages")
    if entry.get("version") != VERIFIED_VERSION or not isinstance(languages, dict):
        raise _BundleFormatError("another Pagefind version")
    if len(languages) != 1 or (language is not None and language not in languages):
        raise _BundleFormatError("not one language")
    ((lang, info),) = languages.items()
    meta = search.read_index_file(bundle / f"pagefind.{info['hash']}.pf_meta")
    if not (isinstance(meta, list) and len(meta) == 6 and meta[4] == []):
        raise _BundleFormatError("meta layout (or sort keys)")
    meta_keys = tuple(str(key) for key in meta[5])
    pages: list[_Split] = []
    for name, _ in meta[1]:
        raw = (bundle / "fragment" / f"{name}.pf_fragment").read_bytes()
        pages.append(_Split(str(name), raw, json.loads(_gunzip(raw))))
    for chunk in meta[2]:
        _split_chunk(_gunzip(bundle / "index" / f"{chunk[2]}.pf_index"), pages)
    by_url = {page_url(rel): rel for rel in rels}
    records = {rel: PageRecord(rel, digests[rel], False) for rel in rels}
    for page in pages:
        data = page.data
        url = str(data["url"])
        if url in ignore:
            continue
        rel = by_url.get(url)
        if rel is None or records[rel].indexed:
            raise _BundleFormatError(f"no page file for {url}")
        filters = data["filters"]
        assert isinstance(filters, dict)
        records[rel] = PageRecord(
            rel=rel,
            digest=digests[rel],
            indexed=True,
            url=url,
            fragment=page.name,
            fragment_gz=page.gz,
            word_count=int(data["word_count"]),
            filters=tuple((str(k), tuple(map(str, v))) for k, v in sorted(filters.items())),
            page_meta=tuple(sorted(str(key) for key in data["meta"])),
            meta_keys=meta_keys,
            words=tuple(page.words),
            variants=tuple(page.variants),
        )
    if lang != _language(records.values()) and any(r.indexed for r in records.values()):
        raise _BundleFormatError("language")
    return records


class _Split:
    """One page of a bundle being split: its fragment and the postings found so far."""

    __slots__ = ("data", "gz", "name", "variants", "words")

    def __init__(self, name: str, gz: bytes, data: dict[str, Any]) -> None:
        self.name = name
        self.gz = gz
        self.data = data
        self.words: list[tuple[str, bytes, int]] = []
        self.variants: list[tuple[str, str, bytes]] = []


def _gunzip(source: Path | bytes) -> bytes:
    raw = gzip.decompress(source.read_bytes() if isinstance(source, Path) else source)
    if not raw.startswith(search.SIGNATURE):
        raise _BundleFormatError("no signature")
    return raw[len(search.SIGNATURE) :]


class _Reader:
    """Walks the word level of a chunk: [[word, postings, [[variant, postings], ...]], ...]."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def head(self, major: int) -> int:
        byte = self.data[self.at]
        if byte >> 5 != major:
            raise _BundleFormatError(f"expected major type {major} at {self.at}")
        info = byte & 0x1F
        self.at += 1
        if info < 24:
            return info
        size = {24: 1, 25: 2, 26: 4, 27: 8}.get(info)
        if size is None:
            raise _BundleFormatError("indefinite length")
        value = int.from_bytes(self.data[self.at : self.at + size], "big")
        self.at += size
        return value

    def text(self) -> str:
        length = self.head(3)
        value = self.data[self.at : self.at + length].decode("utf-8")
        self.at += length
        return value

    def postings(self) -> Iterator[tuple[int, bytes, int]]:
        """(page number, tail, size) of each posting of one list."""
        count = self.head(4)
        span = _POSTINGS.match(self.data, self.at)
        assert span is not None  # `*` always matches
        found = _POSTING.findall(self.data, self.at, span.end())
        if len(found) != count:
            raise _BundleFormatError(f"{len(found)} postings where {count} were announced")
        self.at = span.end()
        page = 0
        for delta, tail, locs_head, meta_head in found:
            page += _uint(delta)
            yield page, tail, _count(locs_head) + _count(meta_head) + 1


def _split_chunk(data: bytes, pages: list[_Split]) -> None:
    reader = _Reader(data)
    if reader.head(4) != 1:
        raise _BundleFormatError("chunk is not [words]")
    for _ in range(reader.head(4)):
        if reader.head(4) != 3:
            raise _BundleFormatError("word is not [word, pages, variants]")
        word = reader.text()
        for page, tail, size in reader.postings():
            pages[page].words.append((word, tail, size))
        for _ in range(reader.head(4)):
            if reader.head(4) != 2:
                raise _BundleFormatError("variant is not [variant, pages]")
            variant = reader.text()
            for page, tail, _size in reader.postings():
                pages[page].variants.append((word, variant, tail))
    if reader.at != len(data):
        raise _BundleFormatError("bytes after the chunk")


def _uint(head: bytes) -> int:
    first = head[0]
    if first >= 0x20:
        raise _BundleFormatError("negative page delta")
    return first if first < 24 else int.from_bytes(head[1:], "big")


def _count(head: bytes) -> int:
    first = head[0] & 0x1F
    return first if first < 24 else int.from_bytes(head[1:], "big")


# -- writing the bundle from records ------------------------------------------------------


def _uint_bytes(value: int) -> bytes:
    if value < 24:
        return bytes((value,))
    for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if value < 1 << (8 * size):
            return bytes((info,)) + value.to_bytes(size, "big")
    raise ValueError("integer too large")


def _head(major: int, value: int) -> bytes:
    encoded = bytearray(_uint_bytes(value))
    encoded[0] |= major << 5
    return bytes(encoded)


def _text(value: str) -> bytes:
    encoded = value.encode("utf-8")
    return _head(3, len(encoded)) + encoded


_SMALL_DELTAS = [b"\x83" + _uint_bytes(n) for n in range(4096)]


def _postings_bytes(postings: list[tuple[int, bytes]]) -> bytes:
    parts = [_head(4, len(postings))]
    previous = 0
    for page, tail in postings:
        delta = page - previous
        previous = page
        parts.append(_SMALL_DELTAS[delta] if delta < 4096 else b"\x83" + _uint_bytes(delta))
        parts.append(tail)
    return b"".join(parts)


def _remapped(record: PageRecord, meta_keys: tuple[str, ...]) -> PageRecord:
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
    records: Sequence[PageRecord | None], bundle: Path, store: RecordStore | None = None
) -> dict[str, PageRecord] | None:
    """Replace the index files of `bundle` (a Pagefind output folder, whose static files
    stay) with the index of `records` (every HTML page, in walk order). Returns the records
    whose meta markers were renumbered (to be saved), or None if the writer cannot model
    these pages (a fragment name collision)."""
    indexed = [r for r in records if r is not None and r.indexed]
    names = [r.fragment for r in indexed]
    if len(set(names)) != len(names) or not indexed:
        return None
    language = names[0].split("_", 1)[0]
    meta_keys = tuple(sorted({key for r in indexed for key in r.page_meta}))
    renumbered: dict[str, PageRecord] = {}
    for number, record in enumerate(indexed):
        moved = _remapped(record, meta_keys)
        if moved is not record:
            indexed[number] = renumbered[record.rel] = moved
    chunks = _chunks(indexed)
    for folder in ("index", "fragment", "filter"):
        shutil.rmtree(bundle / folder, ignore_errors=True)
        (bundle / folder).mkdir()
    for stale in bundle.glob("pagefind.*.pf_meta"):
        stale.unlink()
    chunk_meta = _write_chunks(bundle, language, chunks, store)
    for record in indexed:
        (bundle / "fragment" / f"{record.fragment}.pf_fragment").write_bytes(record.fragment_gz)
    filters = _write_filters(bundle, language, indexed)
    meta: list[object] = [
        VERIFIED_VERSION,
        [[r.fragment, r.word_count] for r in indexed],
        chunk_meta,
        filters,
        [],
        list(meta_keys),
    ]
    meta_name = search.unique_name(
        language, search.encode_index(meta), set(), search.META_HASH_LENGTH
    )
    search.write_index_file(bundle / f"pagefind.{meta_name}.pf_meta", meta)
    entry_path = bundle / "pagefind-entry.json"
    entry = json.loads(entry_path.read_text("utf-8"))
    info = entry["languages"].get(language) or next(iter(entry["languages"].values()))
    entry["languages"] = {language: {**info, "hash": meta_name, "page_count": len(indexed)}}
    entry_path.write_text(json.dumps(entry, ensure_ascii=False, separators=(",", ":")), "utf-8")
    return renumbered


def _chunks(indexed: list[PageRecord]) -> list[tuple[str, str, bytes]]:
    """(first word, last word, CBOR) of each index chunk, cut as Pagefind cuts them."""
    postings: dict[str, list[tuple[int, bytes]]] = {}
    sizes: dict[str, int] = {}
    variants: dict[str, dict[str, list[tuple[int, bytes]]]] = {}
    for number, record in enumerate(indexed):
        for word, tail, size in record.words:
            listed = postings.get(word)
            if listed is None:
                postings[word] = [(number, tail)]
                sizes[word] = size
            else:
                listed.append((number, tail))
                sizes[word] += size
        for word, variant, tail in record.variants:
            variants.setdefault(word, {}).setdefault(variant, []).append((number, tail))
    chunks: list[tuple[str, str, bytes]] = []
    current: list[bytes] = []
    first = ""
    running = 0
    words = sorted(postings.keys() | variants.keys())
    for index, word in enumerate(words):
        if not current:
            first = word
        forms = variants.get(word, {})
        current.append(
            b"\x83"
            + _text(word)
            + _postings_bytes(postings.get(word, []))
            + _head(4, len(forms))
            + b"".join(
                b"\x82" + _text(form) + _postings_bytes(listed) for form, listed in forms.items()
            )
        )
        running += sizes.get(word, 0)
        if running >= CHUNK_SIZE or index == len(words) - 1:
            body = b"".join(current)
            chunks.append((first, word, b"\x81" + _head(4, len(current)) + body))
            current, running = [], 0
    return chunks


def _prefixes(a: str, b: str) -> tuple[str, str]:
    """Pagefind's chunk bounds: each side's shortest prefix that tells them apart."""
    common = 0
    for x, y in zip(b, a, strict=False):
        if x != y:
            break
        common += 1
    return a[: common + 1], b[: common + 1]


def _sha1_name(language: str, data: bytes) -> str:
    # Pagefind formats each digest byte with {:x}: no zero padding
    return f"{language}_" + "".join(format(byte, "x") for byte in hashlib.sha1(data).digest())


def _write_chunks(
    bundle: Path, language: str, chunks: list[tuple[str, str, bytes]], store: RecordStore | None
) -> list[list[str]]:
    bounds = [[first, last] for first, last, _ in chunks]
    for left, right in itertools.pairwise(bounds):
        shorter, right[0] = _prefixes(left[1], right[0])
        # Pagefind 1.5 keeps the whole last word when its prefix would sort before the
        # chunk's own (already shortened) first bound (seen: "by" | "cap" stays "by" in a
        # chunk from "bindi"; 1.3's get_prefixes would give "b")
        if shorter >= left[0]:
            left[1] = shorter
    taken: set[str] = set()
    files: dict[str, bytes] = {}
    result: list[list[str]] = []
    for (_, _, data), bound in zip(chunks, bounds, strict=True):
        full = _sha1_name(language, data)
        length = len(language) + 1 + FRAGMENT_HASH_LENGTH
        name = full[:length]
        while name in taken and len(name) < len(full):
            name = full[: len(name) + 1]
        taken.add(name)
        raw = search.SIGNATURE + data
        packed = store.load_chunk(raw) if store is not None else None
        if packed is None:
            packed = search.compress(raw, search.CHUNK_LEVEL)
        files[hashlib.sha256(raw).hexdigest()] = packed
        (bundle / "index" / f"{name}.pf_index").write_bytes(packed)
        result.append([*bound, name])
    if store is not None:
        store.save_chunks(files)
    return result


def _write_filters(bundle: Path, language: str, indexed: list[PageRecord]) -> list[list[str]]:
    values: dict[str, dict[str, list[int]]] = {}
    for number, record in enumerate(indexed):
        for name, listed in record.filters:
            for value in listed:
                values.setdefault(name, {}).setdefault(value, []).append(number)
    taken: set[str] = set()
    result: list[list[str]] = []
    for name in sorted(values):
        data = [name, [[value, pages] for value, pages in sorted(values[name].items())]]
        file_name = search.unique_name(
            language, search.encode_index(data), taken, search.FILTER_HASH_LENGTH
        )
        search.write_index_file(bundle / "filter" / f"{file_name}.pf_filter", data)
        result.append([name, file_name])
    return result


def _chunk_files(bundle: Path) -> dict[str, bytes]:
    """SHA-256 of each chunk's content (signature included) -> its gzip bytes."""
    files: dict[str, bytes] = {}
    for path in (bundle / "index").glob("*.pf_index"):
        packed = path.read_bytes()
        files[hashlib.sha256(gzip.decompress(packed)).hexdigest()] = packed
    return files


# -- the records in the cache -------------------------------------------------------------


class RecordStore:
    """Per-page records and compressed chunks under `<cache>/v1/search/`, authenticated.

    A record is `seal_bytes(label, payload)` with the label naming the Pagefind version, the
    page's path and its HTML digest: it opens only for exactly that HTML. The payload is a
    JSON header and the raw posting tails and fragment bytes it points into; nothing in it is
    executed or unpickled. A compressed chunk is sealed under the SHA-256 of its content.
    Writes are best effort, like the rest of the cache.
    """

    def __init__(self, cache: CacheDir) -> None:
        self.cache = cache
        self.folder = cache.base / "search"

    def _path(self, rel: str) -> Path:
        name = hashlib.sha256(rel.encode("utf-8", "surrogatepass")).hexdigest()[:40]
        return self.folder / f"{name}.rec"

    @staticmethod
    def _label(rel: str, digest: str) -> str:
        return f"search-record {VERIFIED_VERSION}\x00{rel}\x00{digest}"

    def load(self, rel: str, digest: str) -> PageRecord | None:
        data = read_regular(self._path(rel), RECORD_LIMIT)
        if data is None:
            return None
        payload = unseal_bytes(self._label(rel, digest), data)
        if payload is None:
            return None
        try:
            return decode_record(rel, digest, payload)
        except (ValueError, KeyError, IndexError, TypeError):
            return None

    def save(self, records: Iterable[PageRecord], keep: list[str] | None) -> None:
        with contextlib.suppress(OSError):
            self._real_folder()
            for record in records:
                write_atomic(
                    self._path(record.rel),
                    seal_bytes(self._label(record.rel, record.digest), encode_record(record)),
                )
            if keep is not None:
                live = {self._path(rel).name for rel in keep}
                for path in self.folder.glob("*.rec"):
                    if path.name not in live:
                        path.unlink()

    def load_chunk(self, raw: bytes) -> bytes | None:
        key = hashlib.sha256(raw).hexdigest()
        data = read_regular(self.folder / "chunks" / f"{key}.gz", RECORD_LIMIT)
        packed = unseal_bytes(f"search-chunk {key}", data) if data is not None else None
        return packed

    def save_chunks(self, files: dict[str, bytes]) -> None:
        """Keep exactly these compressed chunks (SHA-256 of the content -> gzip bytes)."""
        with contextlib.suppress(OSError):
            self._real_folder()
            folder = self.folder / "chunks"
            if not folder.is_dir() or folder.is_symlink():
                folder.mkdir()
            live: set[str] = set()
            for key, packed in files.items():
                live.add(f"{key}.gz")
                if not (folder / f"{key}.gz").exists():
                    write_atomic(folder / f"{key}.gz", seal_bytes(f"search-chunk {key}", packed))
            for path in folder.glob("*.gz"):
                if path.name not in live:
                    path.unlink()

    def _real_folder(self) -> None:
        self.cache.ensure()
        with contextlib.suppress(FileExistsError):
            os.mkdir(self.folder)
        if self.folder.is_symlink() or not self.folder.is_dir():
            raise NotADirectoryError(20, "not a real folder", str(self.folder))


def encode_record(record: PageRecord) -> bytes:
    """JSON header, a NUL, then the tails and the fragment bytes the header measures."""
    header = {
        "indexed": record.indexed,
        "url": record.url,
        "fragment": record.fragment,
        "word_count": record.word_count,
        "filters": [[name, list(values)] for name, values in record.filters],
        "page_meta": list(record.page_meta),
        "meta_keys": list(record.meta_keys),
        "words": [[word, len(tail), size] for word, tail, size in record.words],
        "variants": [[word, variant, len(tail)] for word, variant, tail in record.variants],
        "fragment_length": len(record.fragment_gz),
    }
    blob = b"".join(
        [*(t for _, t, _ in record.words), *(t for _, _, t in record.variants), record.fragment_gz]
    )
    return json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode() + b"\x00" + blob


def decode_record(rel: str, digest: str, payload: bytes) -> PageRecord:
    """The inverse of encode_record; ValueError/KeyError/TypeError on anything malformed."""
    split = payload.index(b"\x00")
    header = json.loads(payload[:split])
    blob = payload[split + 1 :]
    word_rows, variant_rows = header["words"], header["variants"]
    lengths = [row[1] for row in word_rows] + [row[2] for row in variant_rows]
    lengths.append(header["fragment_length"])
    # sealed by this cache's key, so written by kbgen; still, lengths must fit exactly
    if not all(type(n) is int and n >= 0 for n in lengths) or sum(lengths) != len(blob):
        raise ValueError("record lengths do not fit its bytes")
    ends = list(itertools.accumulate(lengths))
    starts = [0, *ends[:-1]]
    pieces = [blob[a:b] for a, b in zip(starts, ends, strict=True)]
    count = len(word_rows)
    words = tuple(
        (word, piece, size) for (word, _, size), piece in zip(word_rows, pieces, strict=False)
    )
    variants = tuple(
        (word, variant, piece)
        for (word, variant, _), piece in zip(variant_rows, pieces[count:], strict=False)
    )
    fragment_gz = pieces[-1]
    return PageRecord(
        rel=rel,
        digest=digest,
        indexed=bool(header["indexed"]),
        url=str(header["url"]),
        fragment=str(header["fragment"]),
        fragment_gz=fragment_gz,
        word_count=int(header["word_count"]),
        filters=tuple((str(n), tuple(map(str, v))) for n, v in header["filters"]),
        page_meta=tuple(map(str, header["page_meta"])),
        meta_keys=tuple(map(str, header["meta_keys"])),
        words=words,
        variants=variants,
    )
