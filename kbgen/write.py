"""Write the rendered site: into a staging folder, then swap it in atomically.

Input: `OutputFile`s, the static files to copy, and the output folder.
Output: the new site in place, and which output files changed or disappeared.

Never clean first. The new site is assembled in `.<out>.staging-<pid>` beside the output
folder; files whose bytes are unchanged since the last build (per the manifest kept in the
marker file) are hard-linked from the old site instead of rewritten. The two folders are then
exchanged with one `renameat2(RENAME_EXCHANGE)` call, so at every instant the output folder is
either the complete old site or the complete new one; a build killed at any point leaves the
old site and some staging debris, which the next build removes. Removal never follows
symlinks (`shutil.rmtree` unlinks them), and nothing outside the output folder is touched.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from kbgen import __version__
from kbgen.config import MARKER_FILE
from kbgen.model import OutputFile

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


@dataclass(frozen=True, slots=True)
class StaticFile:
    rel: str  #: output-relative path, e.g. "static/style.css"
    source: Path


@dataclass(frozen=True, slots=True)
class WriteResult:
    changed: tuple[str, ...]  #: output files whose bytes are new or different
    removed: tuple[str, ...]  #: output files that existed before and are gone now


class UnsafeOutputPath(Exception):
    """An output path that would escape the output folder (a bug or hostile input)."""


def read_manifest(output_dir: Path) -> dict[str, str]:
    """rel -> sha256 of the files the last build wrote; {} if absent or unreadable."""
    try:
        data = json.loads((output_dir / MARKER_FILE).read_text("utf-8"))
        files = data.get("files", {})
        if isinstance(files, dict) and all(isinstance(v, str) for v in files.values()):
            return {str(k): v for k, v in files.items()}
    except (OSError, ValueError, AttributeError):
        pass
    return {}


def _safe_target(root: Path, rel: str) -> Path:
    pure = PurePosixPath(rel)
    if pure.is_absolute() or ".." in pure.parts or not rel or "\x00" in rel:
        raise UnsafeOutputPath(rel)
    return root.joinpath(*pure.parts)


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _place(
    staging: Path,
    old_site: Path,
    rel: str,
    digest: str,
    old_manifest: dict[str, str],
    write: Callable[[Path], None],
) -> bool:
    """Put one file into staging; True if its bytes changed since the last build."""
    target = _safe_target(staging, rel)
    target.parent.mkdir(parents=True, exist_ok=True)
    if old_manifest.get(rel) == digest:
        previous = _safe_target(old_site, rel)
        if previous.is_file() and not previous.is_symlink():
            try:
                os.link(previous, target)
                return False
            except OSError:
                pass  # another file system, or links unsupported: write a copy
    write(target)
    return old_manifest.get(rel) != digest


def clean_debris(output_dir: Path) -> None:
    """Remove staging/old folders left by builds that were killed."""
    parent = output_dir.parent
    prefixes = (f".{output_dir.name}.staging-", f".{output_dir.name}.old-")
    try:
        candidates = list(parent.iterdir())
    except OSError:
        return
    for candidate in candidates:
        if not candidate.name.startswith(prefixes) or candidate.is_symlink():
            continue
        pid_text = candidate.name.rsplit("-", 1)[-1]
        if pid_text.isdigit() and int(pid_text) != os.getpid() and _pid_alive(int(pid_text)):
            continue  # another build is running right now
        shutil.rmtree(candidate, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2); False where unsupported."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(a))


def _write_bytes(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def _copy_file(path: Path, source: Path) -> None:
    shutil.copyfile(source, path)


def commit_full(
    outputs: Iterable[OutputFile],
    statics: Iterable[StaticFile],
    output_dir: Path,
    before_swap: Callable[[Path], None] | None = None,
) -> WriteResult:
    """Assemble the whole site in staging, then swap it in for the old one."""
    output_dir = output_dir.absolute()
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    clean_debris(output_dir)
    old_manifest = read_manifest(output_dir) if output_dir.is_dir() else {}
    staging = output_dir.parent / f".{output_dir.name}.staging-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    manifest: dict[str, str] = {}
    changed: list[str] = []
    try:
        for output in outputs:
            digest = hashlib.sha256(output.data).hexdigest()
            manifest[output.rel] = digest
            data = output.data
            if _place(
                staging,
                output_dir,
                output.rel,
                digest,
                old_manifest,
                functools.partial(_write_bytes, data=data),
            ):
                changed.append(output.rel)
        for static in statics:
            digest = _file_digest(static.source)
            manifest[static.rel] = digest
            source = static.source
            if _place(
                staging,
                output_dir,
                static.rel,
                digest,
                old_manifest,
                functools.partial(_copy_file, source=source),
            ):
                changed.append(static.rel)
        marker = {"generator": f"kbgen {__version__}", "files": dict(sorted(manifest.items()))}
        (staging / MARKER_FILE).write_text(json.dumps(marker, indent=0) + "\n", "utf-8")
        if before_swap is not None:
            before_swap(staging)
        _swap_in(staging, output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    removed = tuple(sorted(set(old_manifest) - set(manifest)))
    return WriteResult(tuple(sorted(changed)), removed)


def _swap_in(staging: Path, output_dir: Path) -> None:
    if not output_dir.exists() and not output_dir.is_symlink():
        os.rename(staging, output_dir)
        return
    if _exchange(staging, output_dir):
        shutil.rmtree(staging)  # now holds the old site
        return
    aside = output_dir.parent / f".{output_dir.name}.old-{os.getpid()}"
    os.rename(output_dir, aside)
    os.rename(staging, output_dir)
    shutil.rmtree(aside)
