"""Per-page search records: what the index holds of one HTML page, read from a Pagefind bundle
and kept, sealed, in the cache.

Input: a Pagefind 1.5.2 bundle folder (a full run's or a scratch run's over a few pages) and the
pages' paths and HTML digests; the cache folder (`CacheDir`, untrusted: every read is
authenticated). Output: `PageRecord`s (the page's word postings with positions and weights, its
fragment file, filter values, word count and meta keys), their sealed files
`<cache>/v1/search/*.rec`, and the compressed index chunks kept beside them.

Records are not pickles: each is a sealed envelope (HMAC under the cache key, bound to the
page's path and the SHA-256 of its HTML, `sealing.seal_bytes`) around JSON and raw CBOR bytes
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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kbgen import search
from kbgen.incremental.cache import CacheDir, read_regular, write_atomic
from kbgen.incremental.sealing import seal_bytes, unseal_bytes
from kbgen.search import SearchIndexError

VERIFIED_VERSION = "1.5.2"  #: the Pagefind whose bundle layout this writer reproduces
RECORD_LIMIT = 64 << 20  #: a record file larger than this is not ours


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


def page_url(rel: str) -> str:
    """Pagefind's URL for a page: "/" + its path, without a trailing index.html."""
    return "/" + (rel[: -len("index.html")] if rel.endswith("index.html") else rel)


def language_of(records: Iterable[PageRecord | None]) -> str:
    for record in records:
        if record is not None and record.indexed:
            return record.fragment.split("_", 1)[0]
    return "en"


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


class BundleFormatError(ValueError):
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
    except (BundleFormatError, SearchIndexError, OSError, ValueError, IndexError, KeyError):
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
        raise BundleFormatError("another Pagefind version")
    if len(languages) != 1 or (language is not None and language not in languages):
        raise BundleFormatError("not one language")
    ((lang, info),) = languages.items()
    meta = search.read_index_file(bundle / f"pagefind.{info['hash']}.pf_meta")
    if not (isinstance(meta, list) and len(meta) == 6 and meta[4] == []):
        raise BundleFormatError("meta layout (or sort keys)")
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
            raise BundleFormatError(f"no page file for {url}")
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
    if lang != language_of(records.values()) and any(r.indexed for r in records.values()):
        raise BundleFormatError("language")
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
        raise BundleFormatError("no signature")
    return raw[len(search.SIGNATURE) :]


class ChunkReader:
    """Walks the word level of a chunk: [[word, postings, [[variant, postings], ...]], ...]."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def head(self, major: int) -> int:
        byte = self.data[self.at]
        if byte >> 5 != major:
            raise BundleFormatError(f"expected major type {major} at {self.at}")
        info = byte & 0x1F
        self.at += 1
        if info < 24:
            return info
        size = {24: 1, 25: 2, 26: 4, 27: 8}.get(info)
        if size is None:
            raise BundleFormatError("indefinite length")
        value = int.from_bytes(self.data[self.at : self.at + size], "big")
        self.at += size
        return value

    def text(self) -> str:
        length = self.head(3)
        value = self.data[self.at : self.at + length].decode("utf-8")
        self.at += length
        return value

    def _list(self) -> list[tuple[bytes, bytes, bytes, bytes]]:
        """One posting list's (delta, tail, locs head, meta head) groups, checked against its
        announced length."""
        count = self.head(4)
        span = _POSTINGS.match(self.data, self.at)
        assert span is not None  # `*` always matches
        found = _POSTING.findall(self.data, self.at, span.end())
        if len(found) != count:
            raise BundleFormatError(f"{len(found)} postings where {count} were announced")
        self.at = span.end()
        return found

    def postings(self) -> Iterator[tuple[int, bytes, int]]:
        """(page number, tail, size) of each posting of one list."""
        found = self._list()
        page = 0
        for delta, tail, locs_head, meta_head in found:
            page += _uint(delta)
            yield page, tail, _count(locs_head) + _count(meta_head) + 1

    def pages_and_tails(self) -> tuple[list[int], list[bytes]]:
        """The page numbers and tails of one list, without the per-posting sizes (a list
        this program wrote or already split: its deltas were checked then)."""
        found = self._list()
        deltas = [d[0] if len(d) == 1 else int.from_bytes(d[1:], "big") for d, _, _, _ in found]
        return list(itertools.accumulate(deltas)), [tail for _, tail, _, _ in found]


def _split_chunk(data: bytes, pages: list[_Split]) -> None:
    reader = ChunkReader(data)
    if reader.head(4) != 1:
        raise BundleFormatError("chunk is not [words]")
    for _ in range(reader.head(4)):
        if reader.head(4) != 3:
            raise BundleFormatError("word is not [word, pages, variants]")
        word = reader.text()
        for page, tail, size in reader.postings():
            pages[page].words.append((word, tail, size))
        for _ in range(reader.head(4)):
            if reader.head(4) != 2:
                raise BundleFormatError("variant is not [variant, pages]")
            variant = reader.text()
            for page, tail, _size in reader.postings():
                pages[page].variants.append((word, variant, tail))
    if reader.at != len(data):
        raise BundleFormatError("bytes after the chunk")


def _uint(head: bytes) -> int:
    first = head[0]
    if first >= 0x20:
        raise BundleFormatError("negative page delta")
    return first if first < 24 else int.from_bytes(head[1:], "big")


def _count(head: bytes) -> int:
    first = head[0] & 0x1F
    return first if first < 24 else int.from_bytes(head[1:], "big")


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

    def save_chunks(self, files: dict[str, bytes], keep: set[str] | None = None) -> None:
        """Keep exactly these compressed chunks (SHA-256 of the content -> gzip bytes), and
        those of `keep` (keys of chunks already kept) that are there."""
        with contextlib.suppress(OSError):
            self._real_folder()
            folder = self.folder / "chunks"
            if not folder.is_dir() or folder.is_symlink():
                folder.mkdir()
            live = {f"{key}.gz" for key in keep or ()}
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
