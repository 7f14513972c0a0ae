"""The build cache folder: its layout, how files in it are read and written, the state files.

Input: the project's `cache_dir` (default `.kbgen-cache/`, gitignored), values to keep.
Output: values read back only when they are provably the ones stored (`sealing.py`); the
folder created with a real-folder check of each part of kbgen's own layout.

Under `<cache_dir>/v<FORMAT>/` live:

* `markup/*.pack` + `markup/index`: each page's converted Markdown, many to a pack file
  (`markup_store.MarkupStore`, keyed by `markup_keys.markup_key`).
* `state/<variant>`: what the last successful build of one (project, output folder, drafts)
  variant knew: file stamps and digests, front matter, the dependency graph and the output
  manifest (`save_state`, `load_state`). The next build, in this process or a later one,
  starts from it.
* `jinja/*.sealed`: compiled templates (`SealedBytecodeStore`).

Every file is a sealed envelope (`sealing.py`); a damaged, foreign or outdated one is a miss
and the build does the work again. Files are read only if regular and of bounded size
(`read_regular`), so a planted symlink, FIFO or device is a miss too. Writes go to a
temporary file that is renamed into place (`write_atomic`), so a killed build leaves either
no entry or a complete one, and concurrent builds (serve plus a CLI build) cannot tear a file.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISDIR, S_ISREG
from typing import BinaryIO, TypeVar

from kbgen.incremental.sealing import (
    FORMAT,
    MAGIC,
    CacheCorrupt,
    envelope_of,
    open_envelope,
    seal_bytes,
    unseal,
    unseal_bytes,
    verify,
    write_envelope,
)

T = TypeVar("T")
B = TypeVar("B")


def write_atomic(path: Path, data: bytes) -> None:
    """Write a file so readers see either the old file or the complete new one."""
    with atomic_file(path) as handle:
        handle.write(data)


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A new file to write in parts, put in place as `path` only once the block ends well."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        with open(temp, "wb") as handle:
            yield handle
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


def save_state(cache: CacheDir, variant: str, head: object, body: object) -> None:
    """One file, two envelopes: the small head is unpickled on every build, the body only
    when the head says that something changed."""
    head_bytes = envelope_of(head)
    with contextlib.suppress(OSError):
        cache.folder("state")
        with atomic_file(cache.state_path(variant)) as handle:
            handle.write(MAGIC + len(head_bytes).to_bytes(8, "big") + head_bytes)
            write_envelope(handle, body)  # streamed: the body is tens of MB at 10,000 pages


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
        head = open_envelope(data[start : start + size], head_type)
        body_bytes = data[start + size :]
        verify(body_bytes)
    except CacheCorrupt:
        return None

    def body() -> B | None:
        try:
            return open_envelope(body_bytes, body_type)
        except CacheCorrupt:
            return None

    return head, body


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
