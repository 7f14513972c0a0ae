"""Write the rendered site: staged and swapped in whole, or updated file by file.

Input: `OutputFile`s (or bytes by path), the static files to copy, and the output folder.
Output: the new site in place, and which output files changed or disappeared.

Never clean first. The new site is assembled in `.<out>.staging-<pid>` beside the output
folder; files whose bytes are unchanged since the last build (per the manifest kept in the
marker file) are hard-linked from the old site instead of rewritten. The two folders are then
exchanged with one `renameat2(RENAME_EXCHANGE)` call, so at every instant the output folder is
either the complete old site or the complete new one; a build killed at any point leaves the
old site and some staging debris, which the next build removes. Removal never follows
symlinks (`shutil.rmtree` unlinks them), and nothing outside the output folder is touched.

A warm `kbgen build` stages the same way, hard-linking every unchanged file from the current
site (a link costs ~10 µs; only changed files are written). `serve`'s later builds use
`commit_incremental` instead: new bytes are written beside the site first, then renamed over
their targets in one burst with Ctrl-C deferred (see its docstring), O(changed) files.
A large old site is deleted in the background after the swap (`remove_tree`).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import json
import os
import secrets
import shutil
import signal
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from kbgen import __version__
from kbgen.config_paths import MARKER_FILE

if TYPE_CHECKING:
    import ctypes
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
    marker: str = ""  #: digest of the marker file written (identifies this site version)


class UnsafeOutputPath(Exception):
    """An output path that would escape the output folder (a bug or hostile input)."""


def write_failure(exc: OSError, output_dir: Path) -> tuple[str, str]:
    """Message and hint for a file system error while writing the site (the build had no
    content errors; the disk or a folder's permissions refused). The old site is intact."""
    where = exc.filename if isinstance(exc.filename, str) else str(output_dir)
    message = f"cannot write the site: {exc.strerror or exc} ('{where}')"
    code = exc.errno
    if code in (errno.ENOSPC, errno.EDQUOT):
        hint = f"free space on the disk that holds '{output_dir.parent}', then build again"
    elif code in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = (
            f"a build writes the new site beside the output folder, in '{output_dir.parent}': "
            "make that folder writable, or choose an output folder elsewhere"
        )
    elif code == errno.ENAMETOOLONG:
        hint = "shorten the page slug or tag that this file name comes from"
    else:
        hint = "fix the problem with the output folder's disk or permissions, then build again"
    return message, hint + "; the previous site is unchanged"


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


def _check_rel(rel: str) -> None:
    """The same refusal as _safe_target, on the string (for the hot paths)."""
    if not rel or rel.startswith("/") or "\x00" in rel or ".." in rel.split("/"):
        raise UnsafeOutputPath(rel)


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


BACKGROUND_DELETE_MIN = 500  #: old sites with this many files are deleted in the background
TRASH_QUIET_S = 300  #: trash untouched this long lost its `rm` (killed): delete it again


#: Work folders inside an output folder that is a mount point (see `work_folder`).
INNER_PREFIXES = (".kbgen-staging-", ".kbgen-old-")


def work_folder(output_dir: Path, kind: str) -> Path:
    """Where a build assembles new files (`kind` "staging") or parks the old site ("old").

    Beside the output folder, so one rename swaps it in. An output folder that is a mount
    point cannot be renamed (EBUSY) and a rename into it from outside crosses file systems,
    so there the work folders live inside it and `_replace_contents` moves entries instead.
    """
    if os.path.ismount(output_dir):
        return output_dir / f".kbgen-{kind}-{os.getpid()}"
    return output_dir.parent / f".{output_dir.name}.{kind}-{os.getpid()}"


def clean_debris(output_dir: Path) -> None:
    """Remove staging/old folders left by builds that were killed."""
    parent = output_dir.parent
    prefixes: tuple[str, ...] = (f".{output_dir.name}.staging-", f".{output_dir.name}.old-")
    trash = f".{output_dir.name}.trash-"
    try:
        candidates = list(parent.iterdir())
    except OSError:
        return
    if os.path.ismount(output_dir):
        with contextlib.suppress(OSError):
            candidates += [p for p in output_dir.iterdir() if p.name.startswith(INNER_PREFIXES)]
        prefixes += INNER_PREFIXES
    for candidate in candidates:
        if candidate.is_symlink():
            continue
        if candidate.name.startswith(trash):
            # Its `rm` updates the folder's ctime as it deletes; a quiet one was cut short.
            with contextlib.suppress(OSError):
                if time.time() - candidate.stat().st_ctime > TRASH_QUIET_S:
                    _delete_in_background(candidate)
            continue
        if not candidate.name.startswith(prefixes):
            continue
        pid_text = candidate.name.rsplit("-", 1)[-1]
        if pid_text.isdigit() and int(pid_text) != os.getpid() and _pid_alive(int(pid_text)):
            continue  # another build is running right now
        shutil.rmtree(candidate, ignore_errors=True)


def remove_tree(folder: Path, output_dir: Path, *, background: bool = False) -> None:
    """Delete a folder this program made; a large one without waiting for it.

    In the background case the folder is renamed to `.<out>.trash-<random>` first, so its
    name is free at once, then a detached `rm -rf` deletes it: deleting a big site's files
    can take longer than building it (1.5 s for 1,000 pages on a disk mounted with
    `discard`), and nothing needs to wait for that. Without `rm` it is deleted here.
    """
    if not background or shutil.which("rm") is None:
        shutil.rmtree(folder, ignore_errors=True)
        return
    trash = output_dir.parent / f".{output_dir.name}.trash-{secrets.token_hex(6)}"
    try:
        os.rename(folder, trash)
    except OSError:
        shutil.rmtree(folder, ignore_errors=True)
        return
    _delete_in_background(trash)


def _delete_in_background(folder: Path) -> None:
    import subprocess

    rm = shutil.which("rm")
    if rm is not None:
        try:
            subprocess.Popen(
                [rm, "-rf", "--", str(folder)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # not killed by a Ctrl-C aimed at the build
            )
            return
        except OSError:
            pass
    shutil.rmtree(folder, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@functools.cache
def _libc() -> ctypes.CDLL | None:
    # ctypes is imported only when a swap happens. The running program's own symbols
    # include libc's on Linux; find_library (which runs ldconfig, ~20 ms) is the fallback.
    import ctypes
    import ctypes.util

    with contextlib.suppress(OSError):
        libc = ctypes.CDLL(None, use_errno=True)
        if hasattr(libc, "renameat2"):
            return libc
    libc_name = ctypes.util.find_library("c")
    return ctypes.CDLL(libc_name, use_errno=True) if libc_name else None


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2); False where unsupported."""
    libc = _libc()
    if libc is None:
        return False
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if result == 0:
        return True
    import ctypes

    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(a))


def _write_bytes(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def _copy_file(path: Path, source: Path) -> None:
    shutil.copyfile(source, path)


def marker_bytes(manifest: Mapping[str, str]) -> bytes:
    marker = {"generator": f"kbgen {__version__}", "files": dict(sorted(manifest.items()))}
    return (json.dumps(marker, indent=0) + "\n").encode("utf-8")


def marker_digest(output_dir: Path) -> str | None:
    """Digest of the output folder's marker file: which build last wrote the folder."""
    try:
        return hashlib.sha256((output_dir / MARKER_FILE).read_bytes()).hexdigest()
    except OSError:
        return None


class Staging:
    """A new site assembled beside the output folder and swapped in whole by `commit`.

    `put` may be called from forked worker processes: each call only creates its own file
    (and, race-free, its folders); the caller collects digests and commits in one process.
    """

    def __init__(self, output_dir: Path) -> None:
        self.output_dir = output_dir.absolute()
        self.output_dir.parent.mkdir(parents=True, exist_ok=True)
        clean_debris(self.output_dir)
        self.old_manifest = read_manifest(self.output_dir) if self.output_dir.is_dir() else {}
        self.path = work_folder(self.output_dir, "staging")
        if self.path.exists():
            shutil.rmtree(self.path)
        self.path.mkdir()
        self._folders: set[Path] = set()
        self._made: set[str] = {str(self.path)}

    def _target(self, rel: str) -> Path:
        target = _safe_target(self.path, rel)
        if target.parent not in self._folders:
            target.parent.mkdir(parents=True, exist_ok=True)
            self._folders.add(target.parent)
        return target

    def put(self, rel: str, data: bytes) -> tuple[str, bool]:
        """Stage one output; returns its digest and whether it differs from the old site."""
        digest = hashlib.sha256(data).hexdigest()
        changed = self._place(rel, digest, functools.partial(_write_bytes, data=data))
        return digest, changed

    def put_file(self, rel: str, source: Path, digest: str) -> bool:
        """Stage a copy of a static file whose digest the caller knows."""
        return self._place(rel, digest, functools.partial(_copy_file, source=source))

    def carry(self, rel: str, digest: str) -> None:
        """Stage an output that was not rendered again: the old site's file, hard-linked.

        This runs once per page in every warm `kbgen build`, so it sticks to string paths
        (no pathlib parsing) and lets os.link report a missing file."""
        if self.old_manifest.get(rel) != digest:
            raise FileNotFoundError(f"'{rel}' cannot be carried over: not in the previous site")
        _check_rel(rel)
        previous = os.path.join(self.output_dir, rel)
        target = os.path.join(self.path, rel)
        folder = os.path.dirname(target)
        if folder not in self._made:
            os.makedirs(folder, exist_ok=True)
            self._made.add(folder)
        if os.path.islink(previous):
            raise FileNotFoundError(f"'{rel}' cannot be carried over: {previous} is a link")
        try:
            os.link(previous, target, follow_symlinks=False)
        except FileNotFoundError:
            raise FileNotFoundError(f"'{rel}' cannot be carried over: missing") from None
        except OSError:
            shutil.copyfile(previous, target)

    def carry_tree(self, rel: str) -> bool:
        """Hard-link a whole folder of the old site that is not in the manifest (the search
        index, when no page changed); False if the old site has no such folder."""
        source = _safe_target(self.output_dir, rel)
        if not source.is_dir() or source.is_symlink():
            return False
        for folder, _, files in os.walk(source):
            relative = Path(folder).relative_to(self.output_dir).as_posix()
            target_folder = _safe_target(self.path, relative)
            target_folder.mkdir(parents=True, exist_ok=True)
            for name in files:
                try:
                    os.link(os.path.join(folder, name), target_folder / name)
                except OSError:
                    shutil.copyfile(os.path.join(folder, name), target_folder / name)
        return True

    def _place(self, rel: str, digest: str, write: Callable[[Path], None]) -> bool:
        target = self._target(rel)
        if self.old_manifest.get(rel) == digest:
            previous = _safe_target(self.output_dir, rel)
            if previous.is_file() and not previous.is_symlink():
                try:
                    os.link(previous, target)
                    return False
                except OSError:
                    pass  # another file system, or links unsupported: write a copy
        write(target)
        return self.old_manifest.get(rel) != digest

    def commit(
        self,
        manifest: Mapping[str, str],
        changed: Iterable[str],
        before_swap: Callable[[Path], None] | None = None,
    ) -> WriteResult:
        """Write the marker, run `before_swap` (search indexing), swap the folders."""
        try:
            (self.path / MARKER_FILE).write_bytes(marker_bytes(manifest))
            if before_swap is not None:
                before_swap(self.path)
            _swap_in(
                self.path,
                self.output_dir,
                background=len(self.old_manifest) >= BACKGROUND_DELETE_MIN,
            )
        except BaseException:
            self.abort()
            raise
        removed = tuple(sorted(set(self.old_manifest) - set(manifest)))
        return WriteResult(
            tuple(sorted(set(changed))), removed, marker_digest(self.output_dir) or ""
        )

    def abort(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def commit_full(
    outputs: Iterable[OutputFile],
    statics: Iterable[StaticFile],
    output_dir: Path,
    before_swap: Callable[[Path], None] | None = None,
) -> WriteResult:
    """Assemble the whole site in staging, then swap it in for the old one."""
    staging = Staging(output_dir)
    manifest: dict[str, str] = {}
    changed: list[str] = []
    try:
        for output in outputs:
            digest, is_new = staging.put(output.rel, output.data)
            manifest[output.rel] = digest
            if is_new:
                changed.append(output.rel)
        for static in statics:
            digest = _file_digest(static.source)
            manifest[static.rel] = digest
            if staging.put_file(static.rel, static.source, digest):
                changed.append(static.rel)
    except BaseException:
        staging.abort()
        raise
    return staging.commit(manifest, changed, before_swap)


def commit_incremental(
    output_dir: Path,
    manifest: Mapping[str, str],
    outputs: Mapping[str, bytes],
    statics: Mapping[str, Path],
    old_manifest: Mapping[str, str] | None = None,
) -> WriteResult:
    """Update a site in place: replace only the files whose bytes changed, delete stale ones.

    `manifest` is the complete new site (rel -> digest); every changed rel must be in
    `outputs` (bytes) or `statics` (a file to copy). Phase 1 writes every new file into a
    folder beside the site; any failure there removes it and leaves the site untouched.
    Phase 2 (Ctrl-C and SIGTERM deferred; only renames and unlinks) first
    rewrites the marker without the entries about to change, so a build killed mid-way can
    never hard-link a stale file later, then renames the new files over the old ones,
    deletes stale outputs, and writes the final marker. It touches O(changed) files, not
    O(site), but a SIGKILL inside phase 2 can leave a mix of old and new files, so only
    repeated builds of one `Builder` (serve) use it; a `kbgen build` always stages and swaps.
    """
    output_dir = output_dir.absolute()
    old = dict(old_manifest) if old_manifest is not None else read_manifest(output_dir)
    changed = sorted(rel for rel, digest in manifest.items() if old.get(rel) != digest)
    removed = sorted(set(old) - set(manifest))
    if not changed and not removed:
        return WriteResult((), (), marker_digest(output_dir) or "")
    # New bytes go to a folder beside the site first (same file system, so the renames
    # below are atomic; if the build dies here the next one removes it as debris).
    incoming = work_folder(output_dir, "staging")
    if incoming.exists():
        shutil.rmtree(incoming)
    incoming.mkdir()
    temps: list[tuple[Path, Path]] = []
    try:
        for number, rel in enumerate(changed):
            target = _safe_target(output_dir, rel)
            temp = incoming / str(number)
            temps.append((temp, target))
            if rel in outputs:
                temp.write_bytes(outputs[rel])
            elif rel in statics:
                shutil.copyfile(statics[rel], temp)
            else:
                raise ValueError(f"no bytes for changed output '{rel}'")
        stale = [_safe_target(output_dir, rel) for rel in removed]
    except BaseException:
        shutil.rmtree(incoming, ignore_errors=True)
        raise
    interim = {rel: d for rel, d in old.items() if rel not in manifest or manifest[rel] == d}
    with _signals_deferred():
        _write_marker(output_dir, interim)
        for temp, target in temps:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temp, target)
        for path in stale:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            _prune_empty_parents(path.parent, output_dir)
        _write_marker(output_dir, manifest)
    incoming.rmdir()
    return WriteResult(tuple(changed), tuple(removed), marker_digest(output_dir) or "")


def _write_marker(output_dir: Path, manifest: Mapping[str, str]) -> None:
    marker = output_dir / MARKER_FILE
    temp = output_dir / f"{MARKER_FILE}.{os.getpid()}.tmp"
    temp.write_bytes(marker_bytes(manifest))
    os.replace(temp, marker)


def _prune_empty_parents(folder: Path, root: Path) -> None:
    """Remove folders left empty by deleted outputs (a full build would not have them)."""
    while folder != root and folder.is_relative_to(root):
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold Ctrl-C/SIGTERM/SIGHUP until the block ends (POSIX; elsewhere a no-op)."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    wanted = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, wanted)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _swap_in(staging: Path, output_dir: Path, *, background: bool = False) -> None:
    if not output_dir.exists() and not output_dir.is_symlink():
        os.rename(staging, output_dir)
        return
    if staging.parent == output_dir:  # a mount point: see work_folder
        _replace_contents(staging, output_dir)
        return
    try:
        exchanged = _exchange(staging, output_dir)
    except OSError as exc:
        if exc.errno != errno.EBUSY:
            raise
        # Busy although not a mount point when staging began (or a bind mount that
        # ismount misses): entries move across instead, copied if on another file system.
        _replace_contents(staging, output_dir)
        return
    if exchanged:
        remove_tree(staging, output_dir, background=background)  # now holds the old site
        return
    aside = output_dir.parent / f".{output_dir.name}.old-{os.getpid()}"
    os.rename(output_dir, aside)
    os.rename(staging, output_dir)
    remove_tree(aside, output_dir, background=background)


def _replace_contents(staging: Path, output_dir: Path) -> None:
    """Swap a new site into an output folder that itself cannot be renamed (a mount point).

    The old entries move into a folder inside the output, then the new ones move up, with
    Ctrl-C deferred; if a move fails, the old entries move back. Not one atomic step like
    the exchange, but every file is whole, and each move is a rename when `staging` is
    inside the output folder (`work_folder`).
    """
    aside = output_dir / f".kbgen-old-{os.getpid()}"
    if aside.exists():
        shutil.rmtree(aside)
    aside.mkdir()
    moved_out: list[str] = []
    moved_in: list[str] = []
    with _signals_deferred():
        try:
            for name in sorted(os.listdir(output_dir)):
                if name.startswith(INNER_PREFIXES):
                    continue
                os.rename(output_dir / name, aside / name)
                moved_out.append(name)
            for name in sorted(os.listdir(staging)):
                shutil.move(staging / name, output_dir / name)
                moved_in.append(name)
        except BaseException:
            for name in moved_in:
                _remove_entry(output_dir / name)
            for name in moved_out:
                os.rename(aside / name, output_dir / name)
            shutil.rmtree(aside, ignore_errors=True)
            raise
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(aside, ignore_errors=True)


def _remove_entry(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
