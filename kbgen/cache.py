"""The persistent build cache: converted Markdown and the last build's state, on disk.

Input: the project's `cache_dir` (default `.kbgen-cache/`, gitignored), cache keys, values.
Output: values read back only when they are provably the ones stored under that key.

Two kinds of entries live under `<cache_dir>/v<FORMAT>/`:

* `markup/<aa>/<key>`: one page's `Markup` (HTML with link placeholders, headings, anchors,
  links and citations with positions). The key is a digest of the page body, its first line,
  the Markdown options, the glossary and the generator (kbgen, Python-Markdown, Pygments and
  nh3 versions), so an entry can only ever be read for exactly the input that produced it.
  Entries are written once and never modified.
* `state/<variant>`: what the last successful build of one (project, output folder, drafts)
  variant knew: file stamps and digests, front matter, the dependency graph and the output
  manifest. The next build, in this process or a later one, starts from it.

Every file is an envelope: a magic line with the format version, the SHA-256 of the payload,
then the payload (a pickle). A truncated, bit-flipped, foreign or outdated file fails the
check, or fails to unpickle, or holds the wrong type; in every case it is ignored and the
build does the work again. It is never trusted and never a crash. Pickle is safe here for the
same reason `__pycache__` is: the folder holds files this program wrote for itself, with the
same trust as the project's own code; the checksum and version guard against corruption and
upgrades, not against someone who can already write into the project.
Writes go to a temporary file that is renamed into place, so a killed build leaves either no
entry or a complete one, and concurrent builds (serve plus a CLI build) cannot tear a file.
"""

from __future__ import annotations

import contextlib
import copyreg
import dataclasses
import hashlib
import os
import pickle
import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from kbgen import __version__
from kbgen.diagnostics import Diagnostic
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

    Versions come from the installed distributions' metadata, which costs ~1 ms; importing
    Markdown and Pygments just to ask would cost more than a whole no-change build's check.
    """
    from importlib import metadata

    versions = []
    for name in ("markdown", "pygments", "nh3", "jinja2"):
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:  # pragma: no cover - a vendored copy
            module = __import__(name)
            versions.append(f"{name} {getattr(module, '__version__', '?')}")
    return f"kbgen {__version__}|{'|'.join(versions)}|fmt {FORMAT}"


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


def seal(value: object) -> bytes:
    """value -> envelope bytes (magic, checksum, pickle)."""
    return MAGIC + _envelope(value)


def unseal(data: bytes, expected: type[T]) -> T:
    """Envelope bytes -> value of type `expected`; CacheCorrupt for anything else."""
    if not data.startswith(MAGIC):
        raise CacheCorrupt("wrong magic or format version")
    return _open(data[len(MAGIC) :], expected)


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


def read_entry(path: Path, expected: type[T]) -> T | None:
    """The value stored at `path`, or None if it is absent, unreadable or corrupt."""
    try:
        data = path.read_bytes()
    except OSError:
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
        """Create the folder, marked as a cache for backup tools and ignored by git."""
        if self.base.is_dir():
            return
        self.base.mkdir(parents=True, exist_ok=True)
        tag = self.root / "CACHEDIR.TAG"
        if not tag.exists():
            tag.write_text(
                "Signature: 8a477f597d28d172789f06886806bc55\n"
                "# kbgen's build cache; deleting it only makes the next build cold.\n",
                "utf-8",
            )
        ignore = self.root / ".gitignore"
        if not ignore.exists():
            ignore.write_text("*\n", "utf-8")

    def markup_path(self, key: str) -> Path:
        return self.base / "markup" / key[:2] / key[2:]

    def state_path(self, variant: str) -> Path:
        return self.base / "state" / variant


class MarkupStore:
    """Converted pages by key: in memory for this process, on disk for later builds.

    Thread-safe for the builder's own use; forked loader processes write their own entries
    straight to disk (each entry is one atomically renamed file).
    """

    def __init__(self, cache: CacheDir | None) -> None:
        self.cache = cache
        self._memory: dict[str, Markup] = {}
        self._lock = threading.Lock()
        self.hits_disk = 0
        self.written = 0

    def get(self, key: str) -> Markup | None:
        with self._lock:
            found = self._memory.get(key)
        if found is not None or self.cache is None:
            return found
        found = read_entry(self.cache.markup_path(key), Markup)
        if found is not None:
            with self._lock:
                self._memory[key] = found
                self.hits_disk += 1
        return found

    def put(self, key: str, markup: Markup, to_disk: bool = True) -> None:
        with self._lock:
            self._memory[key] = markup
        if to_disk and self.cache is not None:
            store_markup(self.cache, key, markup)
            self.written += 1

    def remember(self, key: str, markup: Markup) -> None:
        """Keep in memory an entry that another process already wrote to disk."""
        with self._lock:
            self._memory[key] = markup

    def retain(self, keys: Iterable[str]) -> None:
        """Forget in-memory entries of pages that no longer exist (bounded memory in serve)."""
        live = set(keys)
        with self._lock:
            self._memory = {k: v for k, v in self._memory.items() if k in live}

    def prune_disk(self, live_keys: Iterable[str]) -> int:
        """Delete disk entries no build of this project can use any more; returns the count."""
        if self.cache is None:
            return 0
        live = set(live_keys)
        removed = 0
        folder = self.cache.base / "markup"
        try:
            buckets = list(os.scandir(folder))
        except OSError:
            return 0
        for bucket in buckets:
            if not bucket.is_dir(follow_symlinks=False):
                continue
            try:
                entries = list(os.scandir(bucket.path))
            except OSError:
                continue
            for entry in entries:
                if bucket.name + entry.name not in live and not entry.name.endswith(".tmp"):
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)
                        removed += 1
        return removed


def store_markup(cache: CacheDir, key: str, markup: Markup) -> None:
    """Write one conversion result; a failure to cache is never a failure to build."""
    with contextlib.suppress(OSError):
        write_atomic(cache.markup_path(key), seal(markup))


def save_state(cache: CacheDir, variant: str, head: object, body: object) -> None:
    """One file, two envelopes: the small head is unpickled on every build, the body only
    when the head says that something changed."""
    head_bytes = _envelope(head)
    data = MAGIC + len(head_bytes).to_bytes(8, "big") + head_bytes + _envelope(body)
    with contextlib.suppress(OSError):
        cache.ensure()
        write_atomic(cache.state_path(variant), data)


def load_state(
    cache: CacheDir, variant: str, head_type: type[T], body_type: type[B]
) -> tuple[T, Callable[[], B | None]] | None:
    """(head, a function returning the body) for a valid state file, else None."""
    try:
        data = cache.state_path(variant).read_bytes()
    except OSError:
        return None
    if not data.startswith(MAGIC):
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
    return hashlib.sha256(payload).digest() + payload


def _verify(envelope: bytes) -> bytes:
    checksum, payload = envelope[:_CHECKSUM_BYTES], envelope[_CHECKSUM_BYTES:]
    if len(checksum) != _CHECKSUM_BYTES or hashlib.sha256(payload).digest() != checksum:
        raise CacheCorrupt("checksum mismatch")
    return payload


def _open(envelope: bytes, expected: type[T]) -> T:
    payload = _verify(envelope)
    try:
        value = pickle.loads(payload)
    except Exception as exc:
        raise CacheCorrupt(f"cannot unpickle: {type(exc).__name__}") from None
    if not isinstance(value, expected):
        raise CacheCorrupt(f"holds {type(value).__name__}, expected {expected.__name__}")
    return value
