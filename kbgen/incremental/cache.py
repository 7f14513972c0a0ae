"""The persistent build cache: converted Markdown and the last build's state, on disk.

Input: the project's `cache_dir` (default `.kbgen-cache/`, gitignored), cache keys, values.
Output: values read back only when they are provably the ones stored under that key.

Two kinds of entries live under `<cache_dir>/v<FORMAT>/`:

* `markup/*.pack` + `markup/index`: each page's `Markup` (HTML with link placeholders,
  headings, anchors, links and citations with positions), many to a pack file. The key is a
  digest of the page body, its first line, the Markdown options, the glossary and the
  generator (kbgen, Python-Markdown, Pygments, nh3 and Jinja2 versions), so an entry can
  only ever be read for exactly the input that produced it (see `MarkupStore`).
* `state/<variant>`: what the last successful build of one (project, output folder, drafts)
  variant knew: file stamps and digests, front matter, the dependency graph and the output
  manifest. The next build, in this process or a later one, starts from it.

Every file is an envelope: a magic line with the format version, the SHA-256 of the payload,
then the payload (a pickle); each pack entry is checksummed the same way. A truncated,
bit-flipped, foreign or outdated entry fails the check, or fails to unpickle, or holds the
wrong type; in every case it is ignored and the build does the work again. It is never
trusted and never a crash.
Pickle is only ever read back from an entry whose HMAC-SHA256 verifies under a secret kept
outside the project (`KBGEN_CACHE_KEY`, else `~/.cache/kbgen/cache-key`, mode 0600), so a
cache folder that arrives with the project (committed, or in a pull request) is ignored, not
unpickled; the version line guards against format changes.
Writes go to a temporary file that is renamed into place, so a killed build leaves either no
entry or a complete one, and concurrent builds (serve plus a CLI build) cannot tear a file.
"""

from __future__ import annotations

import contextlib
import copyreg
import dataclasses
import hashlib
import hmac
import os
import pickle
import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISDIR, S_ISREG
from typing import TypeVar

from kbgen import __version__
from kbgen.diagnostics import Diagnostic, warning
from kbgen.model import (
    Backlink,
    CiteRef,
    FrontMatter,
    GlossaryTerm,
    Heading,
    LinkRef,
    Markup,
    OutputFile,
    Page,
    Reference,
    ResolvedLink,
)

FORMAT = 1  #: bump when the layout or any cached type changes shape
MAGIC = f"kbgen-cache {FORMAT}\n".encode()
_CHECKSUM_BYTES = 32
RACY_NS = 2_000_000_000  #: files modified this close to a scan are re-hashed next time

T = TypeVar("T")
B = TypeVar("B")


class CacheCorrupt(Exception):
    """An entry failed its envelope check; the caller treats it as absent."""


def generator_id() -> str:
    """kbgen and the libraries whose output we cache: an upgrade of any invalidates all.

    Each library is identified by its installed distribution's version (from the
    `*.dist-info` folder beside it) and the size and mtime of its `__init__`, found without
    importing it: importing Markdown and Pygments (or importlib.metadata) just to ask would
    cost more than a whole no-change build's check.
    """
    parts = [_library_stamp(name) for name in ("markdown", "pygments", "nh3", "jinja2")]
    return f"kbgen {__version__} {_source_stamp()}|{'|'.join(parts)}|fmt {FORMAT}"


def _library_stamp(name: str) -> str:
    import importlib.util

    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        return f"{name} missing"
    origin = Path(spec.origin)
    folder = origin.parent.parent if origin.name == "__init__.py" else origin.parent
    prefix = f"{name.lower()}-"
    versions = sorted(
        entry[len(prefix) : -len(".dist-info")]
        for entry in os.listdir(folder)
        if entry.lower().startswith(prefix) and entry.endswith(".dist-info")
    )
    try:
        stat = origin.stat()
    except OSError:
        return f"{name} missing"
    return f"{name} {','.join(versions) or '?'} {stat.st_size}:{stat.st_mtime_ns}"


def _source_stamp() -> str:
    """Size and mtime of kbgen's own modules: editing kbgen (without bumping its version,
    as in development) must not reuse conversions or graphs made by the old code."""
    # kbgen/, not this file's folder: since the move into kbgen/incremental/ the stamp saw
    # only this package, and an edit to kbgen/markup.py reused the old conversions.
    package = Path(__file__).parent.parent
    stamps = []
    for path in sorted(package.rglob("*")):
        if path.suffix in (".py", ".js", ".css") and "__pycache__" not in path.parts:
            stat = path.stat()
            rel = path.relative_to(package).as_posix()
            stamps.append(f"{rel}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(stamps).encode()).hexdigest()[:16]


def register_fast_pickling(*classes: type) -> None:
    """Pickle these dataclasses as `Class(*fields)`.

    Frozen slots dataclasses otherwise unpickle through a generic `__setstate__` that looks
    up `dataclasses.fields()` for every object: ~3x slower, and a warm build unpickles tens
    of thousands of them (cache entries, the state, results from worker processes).
    """
    for cls in classes:
        names = tuple(f.name for f in dataclasses.fields(cls))
        if not all(f.init for f in dataclasses.fields(cls)):
            raise TypeError(f"{cls.__name__} has fields outside __init__")
        copyreg.pickle(cls, _reducer(cls, names))


def _reducer(
    cls: type, names: tuple[str, ...]
) -> Callable[[object], tuple[type, tuple[object, ...]]]:
    def reduce(obj: object) -> tuple[type, tuple[object, ...]]:
        return cls, tuple([getattr(obj, name) for name in names])

    return reduce


register_fast_pickling(
    Backlink,
    CiteRef,
    Diagnostic,
    FrontMatter,
    GlossaryTerm,
    Heading,
    LinkRef,
    Markup,
    OutputFile,
    Page,
    Reference,
    ResolvedLink,
)


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


def seal(value: object) -> bytes:
    """value -> envelope bytes (magic, checksum, pickle)."""
    return MAGIC + _envelope(value)


def unseal(data: bytes, expected: type[T]) -> T:
    """Envelope bytes -> value of type `expected`; CacheCorrupt for anything else."""
    if not data.startswith(MAGIC):
        raise CacheCorrupt("wrong magic or format version")
    return _open(data[len(MAGIC) :], expected)


def seal_bytes(label: str, data: bytes) -> bytes:
    """Bytes another library will deserialise (Jinja2's marshalled bytecode) in an envelope
    authenticated with the cache key, bound to `label` (which template it is)."""
    payload = label.encode("utf-8", "surrogatepass") + b"\x00" + data
    return MAGIC + _mac(payload) + payload


def unseal_bytes(label: str, envelope: bytes) -> bytes | None:
    """The inverse of seal_bytes; None unless authentic and sealed under this label."""
    if not envelope.startswith(MAGIC):
        return None
    try:
        payload = _verify(envelope[len(MAGIC) :])
    except CacheCorrupt:
        return None
    prefix = label.encode("utf-8", "surrogatepass") + b"\x00"
    return payload[len(prefix) :] if payload.startswith(prefix) else None


def write_atomic(path: Path, data: bytes) -> None:
    """Write a file so readers see either the old file or the complete new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        with open(temp, "wb") as handle:
            handle.write(data)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise


MAX_FILE_BYTES = 1 << 30  #: a cache file larger than this is not read (a planted huge file)


def read_regular(path: Path, limit: int = MAX_FILE_BYTES) -> bytes | None:
    """The bytes of `path` if it is a regular file of at most `limit` bytes, else None.

    Cache folders can arrive with a contribution, so nothing in them is opened blindly: a
    symlink (to /dev/zero, or to a file outside the project), a FIFO (open would block), a
    device or a file too large to hold is a miss. The type is checked with lstat before
    opening (so no device is ever opened) and again on the open descriptor (O_NOFOLLOW, so
    a swap in between cannot smuggle in a link), and no more than the stat'ed size is read.
    """
    try:
        before = os.lstat(path)
        if not S_ISREG(before.st_mode) or before.st_size > limit:
            return None
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        info = os.fstat(descriptor)
        if (info.st_dev, info.st_ino) != (before.st_dev, before.st_ino) or info.st_size > limit:
            return None
        chunks: list[bytes] = []
        remaining = info.st_size + 1  # one byte more: a file that grew is not the one stat'ed
        while remaining > 0:
            chunk = os.read(descriptor, min(remaining, 1 << 24))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        data = b"".join(chunks)
        return data if len(data) == info.st_size else None
    except OSError:
        return None
    finally:
        os.close(descriptor)


def read_entry(path: Path, expected: type[T]) -> T | None:
    """The value stored at `path`, or None if it is absent, unreadable or corrupt."""
    data = read_regular(path)
    if data is None:
        return None
    try:
        return unseal(data, expected)
    except CacheCorrupt:
        return None


def digest_text(*parts: str) -> str:
    """A stable digest of several strings (NUL-separated, so ('ab','c') != ('a','bc'))."""
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(part.encode("utf-8", "surrogatepass"))
        hasher.update(b"\x00")
    return hasher.hexdigest()


def glossary_digest(glossary: Iterable[GlossaryTerm]) -> str:
    """What Markdown conversion reads from the glossary: ids, forms and definitions."""
    return digest_text(
        *(f"{t.id}\x1f{t.term}\x1f{t.definition}\x1f{chr(31).join(t.aliases)}" for t in glossary)
    )


def engine_key(generator: str, markdown_key: str, glossary: str) -> str:
    """Everything a conversion depends on besides the body itself."""
    return digest_text(generator, markdown_key, glossary)


def markup_key(engine: str, body_line: int, body: str) -> str:
    """The cache key of one conversion: the engine plus the exact body and where it starts."""
    return digest_text(engine, str(body_line), body)


# -- file stamps --------------------------------------------------------------------------

Stamp = tuple[int, int, int, int]  #: (size, mtime_ns, ctime_ns, inode): "unchanged" unread


def stamp_of(path: Path) -> Stamp | None:
    """ctime is included: chmod, rename over and hard links change it but not mtime."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)


def stamp_trusted(stamp: Stamp | None, previous: Stamp | None, scanned_ns: int) -> bool:
    """True when an equal stamp proves the file is unchanged since the previous scan.

    A file written within RACY_NS before that scan could have been written again within the
    same timestamp tick after it (git's "racily clean" case), so its stamp proves nothing.
    """
    if stamp is None or stamp != previous:
        return False
    return max(stamp[1], stamp[2]) < scanned_ns - RACY_NS


def file_digest(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


# -- the stores ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CacheDir:
    root: Path  #: config.cache_dir

    @property
    def base(self) -> Path:
        return self.root / f"v{FORMAT}"

    def ensure(self) -> None:
        """Create the folders, the root marked as a cache for backup tools and ignored by git.

        Raises OSError if the root cannot be created or written, or if a folder of kbgen's
        own layout inside it (`v1/`, `markup/`, `state/`, `jinja/`) exists as anything but a
        real folder: a symlink planted in a contributed cache would otherwise have the build
        write, and delete old packs, wherever it points.
        """
        if not self.root.is_dir() or not os.access(self.root, os.W_OK | os.X_OK):
            self.root.mkdir(parents=True, exist_ok=True)
            if not os.access(self.root, os.W_OK | os.X_OK):
                raise PermissionError(13, "cache folder is not writable", str(self.root))
        for folder in (self.base, *(self.base / name for name in SUBFOLDERS)):
            _real_folder(folder)
        tag = self.root / "CACHEDIR.TAG"
        if not os.path.lexists(tag):
            write_atomic(
                tag,
                b"Signature: 8a477f597d28d172789f06886806bc55\n"
                b"# kbgen's build cache; deleting it only makes the next build cold.\n",
            )
        ignore = self.root / ".gitignore"
        if not os.path.lexists(ignore):
            write_atomic(ignore, b"*\n")

    def folder(self, name: str) -> Path:
        """`v1/<name>`, created if missing; OSError unless it is a real folder (see ensure)."""
        self.ensure()
        return self.base / name

    def state_path(self, variant: str) -> Path:
        return self.base / "state" / variant


SUBFOLDERS = ("markup", "state", "jinja")


def _real_folder(path: Path) -> None:
    """Make `path` (one level) unless it exists; OSError if it is not a real directory."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(path)
    info = os.lstat(path)
    if not S_ISDIR(info.st_mode):
        raise NotADirectoryError(20, "not a real folder (a symlink or a file)", str(path))


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
            payload = _verify(envelope)
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
    return _envelope((key, markup))


def open_entry(data: bytes) -> tuple[str, Markup]:
    """The inverse of entry_bytes; CacheCorrupt if the bytes are not a valid entry."""
    found = _open(data, tuple)
    if len(found) != 2 or not isinstance(found[0], str) or not isinstance(found[1], Markup):
        raise CacheCorrupt("not a markup entry")
    return found[0], found[1]


def save_state(cache: CacheDir, variant: str, head: object, body: object) -> None:
    """One file, two envelopes: the small head is unpickled on every build, the body only
    when the head says that something changed."""
    head_bytes = _envelope(head)
    data = MAGIC + len(head_bytes).to_bytes(8, "big") + head_bytes + _envelope(body)
    with contextlib.suppress(OSError):
        cache.folder("state")
        write_atomic(cache.state_path(variant), data)


def load_state(
    cache: CacheDir, variant: str, head_type: type[T], body_type: type[B]
) -> tuple[T, Callable[[], B | None]] | None:
    """(head, a function returning the body) for a valid state file, else None."""
    data = read_regular(cache.state_path(variant))
    if data is None or not data.startswith(MAGIC):
        return None
    start = len(MAGIC) + 8
    size = int.from_bytes(data[len(MAGIC) : start], "big")
    try:
        head = _open(data[start : start + size], head_type)
        body_bytes = data[start + size :]
        _verify(body_bytes)
    except CacheCorrupt:
        return None

    def body() -> B | None:
        try:
            return _open(body_bytes, body_type)
        except CacheCorrupt:
            return None

    return head, body


def _envelope(value: object) -> bytes:
    payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return _mac(payload) + payload


Envelope = TypeVar("Envelope", bytes, memoryview)


def _verify(envelope: Envelope) -> Envelope:
    checksum, payload = envelope[:_CHECKSUM_BYTES], envelope[_CHECKSUM_BYTES:]
    if len(checksum) != _CHECKSUM_BYTES or not hmac.compare_digest(_mac(payload), checksum):
        raise CacheCorrupt("checksum mismatch")
    return payload


# Entries are authenticated with HMAC-SHA256 under a secret kept outside the project, not a
# bare checksum: a cache file that arrives with the project (a contributed `.kbgen-cache/` in a
# pull request) fails verification and is never unpickled. The secret comes from
# KBGEN_CACHE_KEY (a CI secret: a restored cache folder is then readable on a fresh runner),
# else from a per-user key file (created on first use), else, when neither can be had, from a
# key made for this run alone (with a notice). It is resolved once per process, before any
# worker starts, and handed to every worker (`adopt_key`), so what workers seal the parent
# can open. docs/publishing.md has the threat model of each source.
KEY_ENV = "KBGEN_CACHE_KEY"
MIN_ENV_KEY_CHARS = 32  #: `python -c "import secrets; print(secrets.token_hex(32))"` gives 64
_KEY_BYTES = 32
_KEY_LOCK = threading.Lock()
_KEY: list[CacheKey] = []


@dataclass(frozen=True)
class CacheKey:
    """The HMAC secret of this run, where it came from, and why it is not the usual one."""

    secret: bytes = dataclasses.field(repr=False)
    source: str  #: KEY_ENV, the key file's path, or "this run only"
    notice: Diagnostic | None = None  #: a warning for the user, when the cache cannot last


def cache_key_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "kbgen" / "cache-key"


def cache_key() -> CacheKey:
    """This process's key, resolved on first use (from the environment, then the key file)."""
    with _KEY_LOCK:
        if not _KEY:
            _KEY.append(resolve_key(os.environ.get(KEY_ENV, ""), cache_key_path()))
        return _KEY[0]


def key_notice() -> Diagnostic | None:
    """The warning about this process's key (it will not last, or KBGEN_CACHE_KEY is unusable),
    if a key was needed at all."""
    with _KEY_LOCK:
        return _KEY[0].notice if _KEY else None


def adopt_key(key: CacheKey) -> None:
    """Use `key` in this process (a worker takes its parent's, so both seal alike)."""
    with _KEY_LOCK:
        _KEY[:] = [key]


def resolve_key(from_env: str, path: Path) -> CacheKey:
    """The key from KBGEN_CACHE_KEY's value if set (empty counts as unset: an undefined CI
    secret expands to ""), else from the key file at `path`."""
    if from_env:
        if len(from_env) >= MIN_ENV_KEY_CHARS:
            digest = hashlib.sha256(b"kbgen cache key\0" + from_env.encode("utf-8")).digest()
            return CacheKey(digest, KEY_ENV)
        fallback = _load_or_create_key(path)
        problem = _key_notice(
            KEY_ENV,
            f"{KEY_ENV} is set but has only {len(from_env)} characters; it is ignored and "
            f"the key in {fallback.source} is used",
            f"use a random secret of at least {MIN_ENV_KEY_CHARS} characters, e.g. the output "
            'of: python -c "import secrets; print(secrets.token_hex(32))"',
        )
        return dataclasses.replace(fallback, notice=fallback.notice or problem)
    return _load_or_create_key(path)


def _load_or_create_key(path: Path) -> CacheKey:
    """The key stored at `path` (mode 0600), made and stored if absent or damaged; a key for
    this run alone, with a notice, if it cannot be stored."""
    existing = _read_key(path)
    if existing is not None:
        return CacheKey(existing, str(path))
    key = secrets.token_bytes(_KEY_BYTES)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _store_key(path, key)
    except OSError as exc:
        return CacheKey(
            key,
            "this run only",
            _key_notice(
                str(path),
                f"the build cache key cannot be stored here ({exc.strerror or exc}); this "
                "run uses a key of its own, so the next run cannot reuse its cache",
                f"make {path.parent} writable, point XDG_CACHE_HOME at a writable folder "
                f"outside the project, or set {KEY_ENV} (see docs/publishing.md)",
            ),
        )
    # Another process may have stored its key at the same moment: the file decides.
    stored = _read_key(path)
    return CacheKey(stored if stored is not None else key, str(path))


def _read_key(path: Path) -> bytes | None:
    try:
        key = path.read_bytes()
    except OSError:
        return None
    return key if len(key) == _KEY_BYTES else None


def _store_key(path: Path, key: bytes) -> None:
    """Write `key` to `path` whole: a new file, or one replacing a damaged (truncated) key.
    A temporary file renamed into place, so a reader never sees a partial key."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(key)
        try:
            os.link(temporary, path)  # atomic, and never over a key another process stored
        except OSError:
            if _read_key(path) is None:  # damaged (or no hard links here): replace it
                os.replace(temporary, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temporary)


def _key_notice(where: str, message: str, hint: str) -> Diagnostic:
    return warning(where, None, None, message, hint)


def _secret() -> bytes:
    return cache_key().secret


def _mac(payload: bytes | memoryview) -> bytes:
    return hmac.new(_secret(), payload, hashlib.sha256).digest()


def _open(envelope: bytes, expected: type[T]) -> T:
    payload = _verify(envelope)
    try:
        value = pickle.loads(payload)
    except Exception as exc:
        raise CacheCorrupt(f"cannot unpickle: {type(exc).__name__}") from None
    if not isinstance(value, expected):
        raise CacheCorrupt(f"holds {type(value).__name__}, expected {expected.__name__}")
    return value


class SealedBytecodeStore:
    """Compiled Jinja2 templates, authenticated: nothing is unmarshalled unless kbgen sealed it.

    Jinja2's own FileSystemBytecodeCache pickle-loads a file's header and marshal-loads its
    code, then runs it, with no check; its file names (`__jinja2_<sha1 of the template's
    name and path>.cache`) are predictable, so a contributed cache folder could run code.
    Here each entry is a sealed envelope (HMAC under the per-user key, bound to the
    template's bucket key), read only from a regular file of bounded size; anything else is
    a miss and the template is compiled again. Writing is best effort, like the rest of the
    cache. (`render.Renderer` adapts it to Jinja2's BytecodeCache.)
    """

    MAX_BYTES = 16 << 20  #: compiled templates are kilobytes; a bigger file is not ours

    def __init__(self, cache: CacheDir) -> None:
        self.cache = cache

    def load(self, key: str) -> bytes | None:
        data = read_regular(self.cache.base / "jinja" / f"{key}.sealed", self.MAX_BYTES)
        return unseal_bytes(key, data) if data is not None else None

    def store(self, key: str, data: bytes) -> None:
        with contextlib.suppress(OSError):
            folder = self.cache.folder("jinja")
            write_atomic(folder / f"{key}.sealed", seal_bytes(key, data))

