"""File stamps: "this file is unchanged since the last scan" without reading it.

Input: paths, and the stamps and scan time of the previous build.
Output: a file's `Stamp` (size, mtime, ctime, inode), and whether an equal stamp proves the
file unchanged (not when it was written too close to the previous scan to tell).
"""

from __future__ import annotations

from pathlib import Path

RACY_NS = 2_000_000_000  #: files modified this close to a scan are re-hashed next time

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
