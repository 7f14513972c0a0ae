"""The folders a build works in beside the output folder, and removing them.

Input: the output folder; a work folder to delete.
Output: where a build stages a new site or parks the old one (`work_folder`, named by the
building process's id); debris of killed builds removed (`clean_debris`: only folders whose
process is not running, `pid_alive`); a folder deleted, a large one by a detached `rm` after
a rename out of the way (`remove_tree`). Removal never follows symlinks, and nothing outside
the output folder's parent is touched.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import time
from pathlib import Path

TRASH_QUIET_S = 300  #: trash untouched this long lost its `rm` (killed): delete it again


#: Work folders inside an output folder that is a mount point (see `work_folder`).
INNER_PREFIXES = (".kbgen-staging-", ".kbgen-old-")


def work_folder(output_dir: Path, kind: str) -> Path:
    """Where a build assembles new files (`kind` "staging") or parks the old site ("old").

    Beside the output folder, so one rename swaps it in. An output folder that is a mount
    point cannot be renamed (EBUSY) and a rename into it from outside crosses file systems,
    so there the work folders live inside it and `write_swap.swap_in` moves entries instead.
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
        if pid_text.isdigit() and int(pid_text) != os.getpid() and pid_alive(int(pid_text)):
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


def pid_alive(pid: int) -> bool:
    """Whether process `pid` is running (as far as this user can tell): a work folder named
    by a live process's id is in use and not debris."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
