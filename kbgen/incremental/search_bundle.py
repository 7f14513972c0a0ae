"""The Pagefind 1.5.2 bundle written from per-page records, as Pagefind itself writes it.

Input: every HTML page's `PageRecord` in Pagefind's walk order and a bundle folder whose
static files (JS, WebAssembly, pagefind-entry.json) a Pagefind run wrote. Output: that
folder's index chunks, fragments, filters and meta file, byte for byte what one full run +
`search.canonicalize_bundle` writes (the rules are listed in search_index.py's docstring).
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import shutil
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from kbgen import search
from kbgen.incremental.search_records import VERIFIED_VERSION, PageRecord, RecordStore

CHUNK_SIZE = 20_000  #: Pagefind's word-chunk threshold (postings + positions per chunk)
FRAGMENT_HASH_LENGTH = 7  #: hex digits after "<lang>_" in fragment and chunk names


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


def chunk_files(bundle: Path) -> dict[str, bytes]:
    """SHA-256 of each chunk's content (signature included) -> its gzip bytes."""
    files: dict[str, bytes] = {}
    for path in (bundle / "index").glob("*.pf_index"):
        packed = path.read_bytes()
        files[hashlib.sha256(gzip.decompress(packed)).hexdigest()] = packed
    return files
