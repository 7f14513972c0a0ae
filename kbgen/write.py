"""Write the rendered site: staged and swapped in whole, or updated file by file.

Input: `OutputFile`s (or bytes by path), the static files to copy, and the output folder.
Output: the new site in place, and which output files changed or disappeared.

Never clean first. The new site is assembled in `.<out>.staging-<pid>` beside the output
folder; files whose bytes are unchanged since the last build (per the manifest kept in the
marker file) are hard-linked from the old site instead of rewritten. The two folders are then
exchanged with one `renameat2(RENAME_EXCHANGE)` call (write_swap.py), so at every instant the
output folder is either the complete old site or the complete new one; a build killed at any
point leaves the old site and some staging debris, which the next build removes
(write_folders.py). Removal never follows symlinks (`shutil.rmtree` unlinks them), and
nothing outside the output folder is touched. The manifest lives in the marker file
(write_manifest.py).

A warm `kbgen build` stages the same way, hard-linking every unchanged file from the current
site (a link costs ~10 µs; only changed files are written). `serve`'s later builds use
`commit_incremental` instead: new bytes are written beside the site first, then renamed over
their targets in one burst with Ctrl-C deferred (see its docstring), O(changed) files.
A large old site is deleted in the background after the swap (`write_folders.remove_tree`).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import os
import shutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from kbgen.config_paths import MARKER_FILE
from kbgen.model import OutputFile
from kbgen.write_folders import clean_debris, work_folder
from kbgen.write_manifest import (
    file_digest,
    marker_bytes,
    marker_digest,
    read_manifest,
    write_marker,
)
from kbgen.write_swap import signals_deferred, swap_in

BACKGROUND_DELETE_MIN = 500  #: old sites with this many files are deleted in the background


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


def _safe_target(root: Path, rel: str) -> Path:
    pure = PurePosixPath(rel)
    if pure.is_absolute() or ".." in pure.parts or not rel or "\x00" in rel:
        raise UnsafeOutputPath(rel)
    return root.joinpath(*pure.parts)


def _check_rel(rel: str) -> None:
    """The same refusal as _safe_target, on the string (for the hot paths)."""
    if not rel or rel.startswith("/") or "\x00" in rel or ".." in rel.split("/"):
        raise UnsafeOutputPath(rel)


def _write_bytes(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def _copy_file(path: Path, source: Path) -> None:
    shutil.copyfile(source, path)


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
            swap_in(
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
            digest = file_digest(static.source)
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
    try:
        temps = _write_incoming(incoming, output_dir, changed, outputs, statics)
        stale = [_safe_target(output_dir, rel) for rel in removed]
    except BaseException:
        shutil.rmtree(incoming, ignore_errors=True)
        raise
    interim = {rel: d for rel, d in old.items() if rel not in manifest or manifest[rel] == d}
    with signals_deferred():
        write_marker(output_dir, interim)
        for temp, target in temps:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temp, target)
        for path in stale:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            _prune_empty_parents(path.parent, output_dir)
        write_marker(output_dir, manifest)
    incoming.rmdir()
    return WriteResult(tuple(changed), tuple(removed), marker_digest(output_dir) or "")


def _write_incoming(
    incoming: Path,
    output_dir: Path,
    changed: Iterable[str],
    outputs: Mapping[str, bytes],
    statics: Mapping[str, Path],
) -> list[tuple[Path, Path]]:
    """Phase 1 of `commit_incremental`: each changed file's new bytes in `incoming`, as
    (temporary file, the output file it replaces)."""
    temps: list[tuple[Path, Path]] = []
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
    return temps


def _prune_empty_parents(folder: Path, root: Path) -> None:
    """Remove folders left empty by deleted outputs (a full build would not have them)."""
    while folder != root and folder.is_relative_to(root):
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent
