"""Converted Markdown by key: in memory for this process, in pack files in the cache folder.

Input: the cache folder (or None: memory only), cache keys (`markup_keys.markup_key`) and
each page's `Markup`, also as envelopes made in worker processes (`entry_bytes`).
Output: the `Markup` stored under a key, read back only when its envelope verifies and it
holds that key (else a miss); on `flush`, packs of new entries (`markup/*.pack`) and the
index `markup/index`, with unused packs deleted and sparse ones compacted. `LazyMarkup` is a
verified entry unpickled only when a field is first read.
"""

from __future__ import annotations

import contextlib
import copyreg
import dataclasses
import os
import pickle
import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from kbgen.incremental.cache import CacheDir, read_entry, read_regular, write_atomic
from kbgen.incremental.sealing import CacheCorrupt, envelope_of, open_envelope, seal, verify
from kbgen.model import Markup

_MARKUP_FIELDS = tuple(f.name for f in dataclasses.fields(Markup))


class LazyMarkup(Markup):
    """A cached conversion that is unpickled when one of its fields is first read.

    A warm build needs the Markdown result of every page on disk, but reads few of them:
    a body edit renders one page, and the other pages only lend their front matter.
    Unpickling every page's links and headings up front was the largest part of such a
    build's load stage. The envelope is verified (checksum, key) when the page loads, so a
    damaged entry is still a cache miss then, not a surprise later. It behaves as the
    `Markup` it holds: equal to it, same hash, pickled as a plain `Markup`.
    """

    __slots__ = ("_payload",)

    def __getattr__(self, name: str) -> object:
        # Python calls this only for a slot with no value: every field before the first read.
        if name in _MARKUP_FIELDS and self._load():
            return object.__getattribute__(self, name)
        raise AttributeError(name)

    def _load(self) -> bool:
        try:
            payload = object.__getattribute__(self, "_payload")
        except AttributeError:  # made by dataclasses.replace(): a plain, complete value
            return False
        if payload is None:
            return False
        _key, markup = pickle.loads(payload)
        for name in _MARKUP_FIELDS:
            object.__setattr__(self, name, getattr(markup, name))
        object.__setattr__(self, "_payload", None)
        return True

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Markup):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in _MARKUP_FIELDS)

    __hash__ = Markup.__hash__


def _pickled_str(text: str) -> bytes:
    """How pickle (protocol 4+) writes a str: SHORT_BINUNICODE or BINUNICODE, then UTF-8."""
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) < 256:
        return b"\x8c" + bytes([len(raw)]) + raw
    return b"X" + len(raw).to_bytes(4, "little") + raw


def _lazy_markup(payload: memoryview) -> LazyMarkup:
    lazy = object.__new__(LazyMarkup)
    object.__setattr__(lazy, "_payload", payload)
    return lazy


def _reduce_lazy(lazy: LazyMarkup) -> tuple[Callable[..., Markup], tuple[object, ...]]:
    return Markup, tuple(getattr(lazy, name) for name in _MARKUP_FIELDS)


copyreg.pickle(LazyMarkup, _reduce_lazy)  # type: ignore[arg-type]

Location = tuple[str, int, int]  #: (pack file name, offset, length) of one entry


@dataclass(frozen=True, slots=True)
class PackIndex:
    """Which pack holds each converted page (markup/index on disk)."""

    entries: dict[str, Location]


class MarkupStore:
    """Converted pages by key: in memory for this process, in pack files on disk.

    A cold build converts thousands of pages; writing each result to its own file would cost
    a file creation per page (0.2 ms of kernel time each here, a few % of the build). So
    conversions are collected (`put`, also with results sent back by worker processes) and
    `flush` writes them as one pack file, `markup/<random>.pack`, a run of envelopes each
    holding (key, Markup), plus the index `markup/index` (key -> pack, offset, length). A
    read checks the entry's checksum, its type and that it holds the key asked for; anything
    else is a miss. Packs that no live entry uses are deleted; when most of the bytes in packs
    are dead, the live entries are rewritten into one new pack.
    """

    MAX_PACKS = 64  #: more packs than this (serve flushes one per build) are compacted

    def __init__(self, cache: CacheDir | None) -> None:
        self.cache = cache
        self._memory: dict[str, Markup] = {}
        self._pending: dict[str, bytes] = {}  #: key -> envelope, not yet in a pack
        self._index: dict[str, Location] | None = None
        self._packs: dict[str, bytes | None] = {}  #: pack contents read by this build
        self._lock = threading.Lock()

    # -- reading --------------------------------------------------------------------------

    def get(self, key: str) -> Markup | None:
        return self._find(key, self._read)

    def get_lazy(self, key: str) -> Markup | None:
        """Like `get`, but an entry read from disk is only verified now and unpickled when
        first used (see LazyMarkup)."""
        return self._find(key, self._read_lazy)

    def _find(self, key: str, read: Callable[[str, Location], Markup | None]) -> Markup | None:
        with self._lock:
            found = self._memory.get(key)
            if found is not None or self.cache is None:
                return found
            location = self._disk_index().get(key)
            found = read(key, location) if location is not None else None
            if found is None:
                self._disk_index().pop(key, None)
            else:
                self._memory[key] = found
            return found

    def _payload(self, key: str, location: Location) -> memoryview | None:
        """The verified pickle of the entry at `location`, if it is the entry for `key`."""
        pack, offset, length = location
        data = self._pack_data(pack)
        if data is None or offset + length > len(data):
            return None
        envelope = memoryview(data)[offset : offset + length]
        try:
            payload = verify(envelope)
        except CacheCorrupt:
            return None
        # The pickle of (key, markup) opens with the key: check it without unpickling.
        expected = _pickled_str(key)
        if expected not in bytes(payload[: len(expected) + 16]):
            return None
        return payload

    def _pack_data(self, pack: str) -> bytes | None:
        assert self.cache is not None
        if pack not in self._packs:
            self._packs[pack] = read_regular(self.cache.base / "markup" / pack)
        return self._packs[pack]

    def _disk_index(self) -> dict[str, Location]:
        if self._index is None:
            assert self.cache is not None
            stored = read_entry(self.cache.base / "markup" / "index", PackIndex)
            self._index = dict(stored.entries) if stored is not None else {}
        return self._index

    def _read(self, key: str, location: Location) -> Markup | None:
        payload = self._payload(key, location)
        if payload is None:
            return None
        try:
            stored_key, markup = pickle.loads(payload)
        except Exception:  # authenticated, yet unreadable: a miss all the same
            return None
        return markup if stored_key == key and isinstance(markup, Markup) else None

    def _read_lazy(self, key: str, location: Location) -> Markup | None:
        payload = self._payload(key, location)
        return _lazy_markup(payload) if payload is not None else None

    def release(self) -> None:
        """Drop pack contents read so far (they are only needed while pages load)."""
        with self._lock:
            self._packs.clear()

    # -- writing --------------------------------------------------------------------------

    FLUSH_EVERY = 1000  #: pending entries written out as a pack at this count (bounds memory)

    def put(self, key: str, markup: Markup, envelope: bytes | None = None) -> None:
        """Remember a conversion (`envelope`: its `entry_bytes`, if already made)."""
        full = False
        with self._lock:
            self._memory[key] = markup
            if self.cache is not None:
                self._pending[key] = envelope or entry_bytes(key, markup)
                full = len(self._pending) >= self.FLUSH_EVERY
        if full:
            self.flush()

    def retain(self, keys: Iterable[str]) -> None:
        """Forget in-memory entries of pages that no longer exist (bounded memory in serve)."""
        live = set(keys)
        with self._lock:
            self._memory = {k: v for k, v in self._memory.items() if k in live}
            self._pending = {k: v for k, v in self._pending.items() if k in live}

    def flush(self, live_keys: Iterable[str] | None = None) -> None:
        """Write pending conversions as one pack and update the index; with `live_keys`,
        also forget every other entry and delete or compact packs accordingly.

        Never raises for I/O problems: failing to cache is never failing to build."""
        if self.cache is None:
            return
        with self._lock, contextlib.suppress(OSError):
            folder = self.cache.folder("markup")
            index = self._merged_index(folder)
            if self._pending:
                index.update(self._write_pack(folder, self._pending))
                self._pending = {}
            if live_keys is not None:
                live = set(live_keys)
                index = {k: v for k, v in index.items() if k in live}
                index = self._compacted(folder, index)
            write_atomic(folder / "index", seal(PackIndex(index)))
            self._index = index
            if live_keys is not None:
                self._delete_unused_packs(folder, index)

    def _merged_index(self, folder: Path) -> dict[str, Location]:
        """The index on disk now (another build may have added to it) plus what we know,
        without entries whose pack has gone."""
        stored = read_entry(folder / "index", PackIndex)
        index = dict(stored.entries) if stored is not None else {}
        index.update(self._index or {})
        present = {entry.name for entry in os.scandir(folder) if entry.name.endswith(".pack")}
        return {k: v for k, v in index.items() if v[0] in present}

    def _write_pack(self, folder: Path, entries: dict[str, bytes]) -> dict[str, Location]:
        name = f"{secrets.token_hex(8)}.pack"
        locations: dict[str, Location] = {}
        offset = 0
        for key, envelope in entries.items():
            locations[key] = (name, offset, len(envelope))
            offset += len(envelope)
        write_atomic(folder / name, b"".join(entries.values()))
        return locations

    def _compacted(self, folder: Path, index: dict[str, Location]) -> dict[str, Location]:
        """Rewrite the live entries into one pack when packs are many or mostly dead."""
        packs = {location[0] for location in index.values()}
        live_bytes = sum(location[2] for location in index.values())
        total = 0
        for name in packs:
            with contextlib.suppress(OSError):
                total += (folder / name).stat().st_size
        if len(packs) <= self.MAX_PACKS and live_bytes * 2 >= total:
            return index
        entries: dict[str, bytes] = {}
        for name in sorted(packs):  # one pack in memory at a time
            data = read_regular(folder / name)
            for key, (pack, offset, length) in index.items():
                if pack == name and data is not None and offset + length <= len(data):
                    entries[key] = data[offset : offset + length]
        return self._write_pack(folder, entries) if entries else {}

    def _delete_unused_packs(self, folder: Path, index: dict[str, Location]) -> None:
        used = {location[0] for location in index.values()}
        for entry in os.scandir(folder):
            if entry.name.endswith(".pack") and entry.name not in used:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def entry_bytes(key: str, markup: Markup) -> bytes:
    """One pack entry: an envelope around (key, Markup); worker processes make these."""
    return envelope_of((key, markup))


def open_entry(data: bytes) -> tuple[str, Markup]:
    """The inverse of entry_bytes; CacheCorrupt if the bytes are not a valid entry."""
    found = open_envelope(data, tuple)
    if len(found) != 2 or not isinstance(found[0], str) or not isinstance(found[1], Markup):
        raise CacheCorrupt("not a markup entry")
    return found[0], found[1]
