"""The cache's authentication: the per-process secret, and sealed envelopes of values.

Input: values to seal (any picklable value, or bytes another library will deserialise), and
the secret from `KBGEN_CACHE_KEY` or the per-user key file.
Output: envelope bytes (a magic line with the format version, an HMAC-SHA256 of the
payload, the payload), and values opened from envelopes only when the HMAC verifies under
this process's secret and the value has the expected type (`CacheCorrupt` otherwise).

Pickle is only ever read back from an entry whose HMAC-SHA256 verifies under a secret kept
outside the project (`KBGEN_CACHE_KEY`, else `~/.cache/kbgen/cache-key`, mode 0600), so a
cache folder that arrives with the project (committed, or in a pull request) is ignored, not
unpickled; the version line guards against format changes. A truncated, bit-flipped,
foreign or outdated envelope fails the check, or fails to unpickle, or holds the wrong type:
in every case it is a miss, never trusted and never a crash.

The model's dataclasses are registered for fast pickling here, so every process that seals,
opens or ships values between workers (they all import this module) pickles them alike.
"""

from __future__ import annotations

import contextlib
import copyreg
import dataclasses
import hashlib
import hmac
import operator
import os
import pickle
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

from kbgen import model
from kbgen.diagnostics import Diagnostic, warning

FORMAT = 1  #: bump when the layout or any cached type changes shape
MAGIC = f"kbgen-cache {FORMAT}\n".encode()
_CHECKSUM_BYTES = 32

T = TypeVar("T")


class CacheCorrupt(Exception):
    """An entry failed its envelope check; the caller treats it as absent."""


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
    # attrgetter reads all the fields in C: saving the state of a 1,000-page site pickles
    # ~18,000 of these objects, and this is ~20% faster than a comprehension of getattr
    fields = operator.attrgetter(*names)
    if len(names) == 1:  # attrgetter of one name returns the value, not a 1-tuple

        def reduce_one(obj: object) -> tuple[type, tuple[object, ...]]:
            return cls, (fields(obj),)

        return reduce_one

    def reduce(obj: object) -> tuple[type, tuple[object, ...]]:
        return cls, fields(obj)

    return reduce


register_fast_pickling(
    Diagnostic,
    model.Backlink,
    model.CiteRef,
    model.FrontMatter,
    model.GlossaryTerm,
    model.Heading,
    model.LinkRef,
    model.Markup,
    model.OutputFile,
    model.Page,
    model.Reference,
    model.ResolvedLink,
)


def seal(value: object) -> bytes:
    """value -> envelope bytes (magic, checksum, pickle)."""
    return MAGIC + envelope_of(value)


def unseal(data: bytes, expected: type[T]) -> T:
    """Envelope bytes -> value of type `expected`; CacheCorrupt for anything else."""
    if not data.startswith(MAGIC):
        raise CacheCorrupt("wrong magic or format version")
    return open_envelope(data[len(MAGIC) :], expected)


def seal_bytes(label: str, data: bytes) -> bytes:
    """Bytes another library will deserialise (Jinja2's marshalled bytecode) in an envelope
    authenticated with the cache key, bound to `label` (which template it is)."""
    payload = label.encode("utf-8", "surrogatepass") + b"\x00" + data
    return MAGIC + _mac(payload) + payload


def unseal_bytes(label: str, sealed: bytes) -> bytes | None:
    """The inverse of seal_bytes; None unless authentic and sealed under this label."""
    if not sealed.startswith(MAGIC):
        return None
    try:
        payload = verify(sealed[len(MAGIC) :])
    except CacheCorrupt:
        return None
    prefix = label.encode("utf-8", "surrogatepass") + b"\x00"
    return payload[len(prefix) :] if payload.startswith(prefix) else None


def envelope_of(value: object) -> bytes:
    """value -> (HMAC, pickle), without the magic line: a pack entry, a state file's part."""
    payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return _mac(payload) + payload


def write_envelope(handle: BinaryIO, value: object) -> None:
    """Write `envelope_of(value)` to a seekable file, the pickle streamed through the HMAC.

    For a large value (the build state: ~40 MB pickled at 10,000 pages): `pickle.dumps` holds
    the whole pickle and its growing buffer at once, which made saving the state the build's
    peak of memory. Streamed, only pickle's own bookkeeping is held; the checksum's place is
    kept and filled in at the end. The bytes are those of `envelope_of`.
    """
    start = handle.tell()
    handle.write(bytes(_CHECKSUM_BYTES))
    mac = _new_mac()

    class Through:
        def write(self, data: bytes) -> int:
            mac.update(data)
            return handle.write(data)

    pickle.Pickler(Through(), protocol=pickle.HIGHEST_PROTOCOL).dump(value)
    end = handle.tell()
    handle.seek(start)
    handle.write(mac.digest())
    handle.seek(end)


Envelope = TypeVar("Envelope", bytes, memoryview)


def verify(sealed: Envelope) -> Envelope:
    """The payload of an envelope (without magic line); CacheCorrupt unless it verifies."""
    checksum, payload = sealed[:_CHECKSUM_BYTES], sealed[_CHECKSUM_BYTES:]
    if len(checksum) != _CHECKSUM_BYTES or not hmac.compare_digest(_mac(payload), checksum):
        raise CacheCorrupt("checksum mismatch")
    return payload


def _mac(payload: bytes | memoryview) -> bytes:
    mac = _new_mac()
    mac.update(payload)
    return mac.digest()


def _new_mac() -> hmac.HMAC:
    """The one definition of the envelopes' MAC: HMAC-SHA256 under this run's cache key."""
    return hmac.new(cache_key().secret, digestmod=hashlib.sha256)


def open_envelope(sealed: bytes, expected: type[T]) -> T:
    """The value of type `expected` in an envelope (without magic line); CacheCorrupt else."""
    payload = verify(sealed)
    try:
        value = pickle.loads(payload)
    except Exception as exc:
        raise CacheCorrupt(f"cannot unpickle: {type(exc).__name__}") from None
    if not isinstance(value, expected):
        raise CacheCorrupt(f"holds {type(value).__name__}, expected {expected.__name__}")
    return value


# -- the secret ------------------------------------------------------------------------

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
