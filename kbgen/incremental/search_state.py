"""The search index's state: a compact, sealed picture of the last bundle written.

Input: the word table and page list the bundle writer produced; the cache folder
(`CacheDir`, untrusted: the state file is authenticated, size-capped and only sliced).
Output: `IndexState` values and their sealed file `<cache>/v1/search/state.bin`.

Why. After a body or title edit the set and order of the indexed pages and the meta keys are
unchanged, so the new index differs from the last one only in the words the edited pages
had or have. With the last bundle's sorted word list, each word's encoded index entry and its
share of the chunk threshold at hand, an edit re-encodes only the touched words' entries
(`search_edit.py`) instead of loading every page's record and re-encoding every chunk.

Layout (not a pickle): a JSON header (language, meta keys, pages, filter and chunk files,
section lengths), a NUL, then the words (UTF-8, NUL-separated), two arrays of unsigned 32-bit
integers (each word's size and the length of its entry) and the entries' CBOR bytes, which
are only ever sliced and copied into index chunks. The seal binds the Pagefind version and
the byte order of the integer arrays.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import sys
from array import array
from dataclasses import dataclass

from kbgen.incremental.cache import CacheDir, read_regular, write_atomic
from kbgen.incremental.sealing import seal_bytes, unseal_bytes
from kbgen.incremental.search_records import VERIFIED_VERSION

STATE_LIMIT = 1 << 30  #: a state file larger than this is not ours
STATE_NAME = "state.bin"
_LABEL = f"search-state {VERIFIED_VERSION} {sys.byteorder}"


@dataclass(frozen=True, slots=True)
class WordTable:
    """Every word of the index, sorted, with its encoded entry and its chunk size.

    An entry is the CBOR of Pagefind's `[word, postings, [[variant, postings], ...]]`; a
    size is the sum of `len(locs) + len(meta_locs) + 1` over the word's postings. The three
    lists have one item per word; `search_edit.apply_edit` updates them in place.
    """

    words: list[str]
    entries: list[bytes]
    sizes: list[int]


@dataclass(frozen=True, slots=True)
class PageEntry:
    """One HTML page as the last bundle has it (fragment "" if Pagefind left it out)."""

    rel: str
    digest: str  #: SHA-256 of the HTML the bundle was made of
    fragment: str = ""
    fragment_size: int = 0  #: bytes of the fragment file, checked when it is linked
    word_count: int = 0


@dataclass(frozen=True, slots=True)
class BundleFile:
    """An index or filter file of the last bundle: what it holds, its name, its size."""

    key: str  #: a chunk: SHA-256 of its content (signature included); a filter: its name
    name: str
    size: int


@dataclass(frozen=True, slots=True)
class IndexState:
    """The last bundle: every HTML page in walk order, the meta keys, files and words."""

    language: str
    pages: tuple[PageEntry, ...]
    meta_keys: tuple[str, ...]
    filters: tuple[BundleFile, ...]
    chunks: tuple[BundleFile, ...]
    table: WordTable


def encode_state(state: IndexState) -> bytes | None:
    """The state file's payload; None if a word holds a NUL (the separator)."""
    table = state.table
    if any("\x00" in word for word in table.words):
        return None
    words = "\x00".join(table.words).encode("utf-8")
    sizes = array("I", table.sizes)
    lengths = array("I", map(len, table.entries))
    header = {
        "language": state.language,
        "meta_keys": list(state.meta_keys),
        "pages": [
            [p.rel, p.digest, p.fragment, p.fragment_size, p.word_count] for p in state.pages
        ],
        "filters": [[f.key, f.name, f.size] for f in state.filters],
        "chunks": [[c.key, c.name, c.size] for c in state.chunks],
        "word_count": len(table.words),
        "words_length": len(words),
    }
    head = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return b"".join([head, b"\x00", words, sizes.tobytes(), lengths.tobytes(), *table.entries])


def decode_state(payload: bytes) -> IndexState:
    """The inverse of encode_state; ValueError/KeyError/TypeError on anything malformed."""
    split = payload.index(b"\x00")
    header = json.loads(payload[:split])
    count, words_length = header["word_count"], header["words_length"]
    if type(count) is not int or type(words_length) is not int or min(count, words_length) < 0:
        raise ValueError("state header")
    at = split + 1
    words = payload[at : at + words_length].decode("utf-8").split("\x00") if count else []
    at += words_length
    sizes, lengths = array("I"), array("I")
    width = sizes.itemsize * count
    sizes.frombytes(payload[at : at + width])
    lengths.frombytes(payload[at + width : at + 2 * width])
    at += 2 * width
    if len(words) != count or len(lengths) != count or at + sum(lengths) != len(payload):
        raise ValueError("state lengths do not fit its bytes")
    ends = list(itertools.accumulate(lengths, initial=at))
    entries = [payload[a:b] for a, b in itertools.pairwise(ends)]
    return IndexState(
        language=str(header["language"]),
        pages=tuple(
            PageEntry(str(rel), str(digest), str(fragment), int(size), int(wc))
            for rel, digest, fragment, size, wc in header["pages"]
        ),
        meta_keys=tuple(map(str, header["meta_keys"])),
        filters=tuple(_files(header["filters"])),
        chunks=tuple(_files(header["chunks"])),
        table=WordTable(words, entries, list(sizes)),
    )


def _files(rows: list[list[object]]) -> list[BundleFile]:
    return [BundleFile(str(key), str(name), int(str(size))) for key, name, size in rows]


def load_state(cache: CacheDir) -> IndexState | None:
    """The last bundle's state, if its sealed file is present, intact and ours."""
    data = read_regular(cache.base / "search" / STATE_NAME, STATE_LIMIT)
    payload = unseal_bytes(_LABEL, data) if data is not None else None
    if payload is None:
        return None
    try:
        return decode_state(payload)
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def save_state(cache: CacheDir, state: IndexState | None) -> None:
    """Keep `state` for the next index (None: forget the last one). Best effort."""
    path = cache.base / "search" / STATE_NAME
    with contextlib.suppress(OSError):
        payload = encode_state(state) if state is not None else None
        if payload is None:
            path.unlink(missing_ok=True)
        elif path.parent.is_dir() and not path.parent.is_symlink():
            write_atomic(path, seal_bytes(_LABEL, payload))
