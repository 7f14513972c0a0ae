"""Swapping a staged site in for the old one: one atomic exchange where the system allows.

Input: a complete staged site and the output folder it replaces.
Output: the new site in place of the old one, which is then deleted (in the background when
large). With Linux `renameat2(RENAME_EXCHANGE)` the two folders trade places in one call, so
at every instant the output folder is either the complete old site or the complete new one;
elsewhere two renames; an output folder that is a mount point (it cannot be renamed) has its
entries moved, with Ctrl-C deferred (`signals_deferred`) and the old entries moved back if a
move fails.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from kbgen.write_folders import INNER_PREFIXES, remove_tree

if TYPE_CHECKING:
    import ctypes

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


@functools.cache
def _libc() -> ctypes.CDLL | None:
    # ctypes is imported only when a swap happens. The running program's own symbols
    # include libc's on Linux; find_library (which runs ldconfig, ~20 ms, and imports
    # subprocess) is the fallback.
    import ctypes

    with contextlib.suppress(OSError):
        libc = ctypes.CDLL(None, use_errno=True)
        if hasattr(libc, "renameat2"):
            return libc
    import ctypes.util

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


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
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


def swap_in(staging: Path, output_dir: Path, *, background: bool = False) -> None:
    """Put the complete site in `staging` where `output_dir` is; the old site is deleted
    (`background`: by a detached `rm`, for a large one)."""
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
    with signals_deferred():
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
