"""The output folder's manifest: which files the last build wrote, with their digests.

Input: an output folder (or the staging folder that becomes one), and a manifest
(output rel -> SHA-256 of the file's bytes).
Output: the marker file (`MARKER_FILE`: the generator and the manifest, as JSON) written
atomically, read back (`read_manifest`: {} when absent or unreadable), and its digest
(`marker_digest`: which build last wrote the folder); `file_digest` of one file.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

from kbgen import __version__
from kbgen.config_paths import MARKER_FILE


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


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes, read a megabyte at a time."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def marker_bytes(manifest: Mapping[str, str]) -> bytes:
    marker = {"generator": f"kbgen {__version__}", "files": dict(sorted(manifest.items()))}
    return (json.dumps(marker, indent=0) + "\n").encode("utf-8")


def marker_digest(output_dir: Path) -> str | None:
    """Digest of the output folder's marker file: which build last wrote the folder."""
    try:
        return hashlib.sha256((output_dir / MARKER_FILE).read_bytes()).hexdigest()
    except OSError:
        return None


def write_marker(output_dir: Path, manifest: Mapping[str, str]) -> None:
    """Replace the marker file in `output_dir` at once (a temporary file renamed over it)."""
    marker = output_dir / MARKER_FILE
    temp = output_dir / f"{MARKER_FILE}.{os.getpid()}.tmp"
    temp.write_bytes(marker_bytes(manifest))
    os.replace(temp, marker)
