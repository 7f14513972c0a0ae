"""Search stage: run Pagefind over a written site and make its bundle deterministic.

Input: the folder holding the complete rendered site (the staging folder during a build, or
the live output folder when `serve` refreshes the index in the background).
Output: `<site>/pagefind/` (index, fragments, filters, the Pagefind JS API and UI files).

Pagefind ships as a real static binary inside the `pagefind[bin]` wheel; we run its CLI once
over the whole folder (one `add_html_file` call per page through the Python API is ~100x
slower). Only elements inside `data-pagefind-body` are indexed; filters come from
`data-pagefind-filter` attributes in the templates.

Determinism. Pagefind 1.5 writes each filter file's values in hash-map order, which differs
between runs, and names files by a hash of their bytes: the same site gave different
`filter/*.pf_filter` names, a different `pagefind.*.pf_meta` and a different
`pagefind-entry.json` every build. `canonicalize_bundle` rewrites exactly those files with the
values sorted (what Pagefind's own newer code does), renames them by a hash of the new bytes and
updates the references, so one input gives one byte-identical tree. Every file it rewrites is
first checked to re-encode to its original bytes, so an unexpected format is an error and never
a silently corrupted index. Bundles from a Pagefind other than 1.5.x are left as written.

The bundle is written into a hidden folder beside `pagefind/` and renamed into place, so pages
served while `serve` re-indexes never see a half-written bundle.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import struct
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

BUNDLE_DIR = "pagefind"
#: Inside indexed bodies, kept out of the index: heading "#" anchors and citation numbers
#: would otherwise show up in result snippets ("Evidence# ... esketamine 1, 2.").
EXCLUDE_SELECTORS = ".headerlink, .cite, .backrefs"
KNOWN_FORMAT = "1.5."  #: Pagefind versions whose file layout `canonicalize_bundle` knows
SIGNATURE = b"pagefind_dcd"  #: Pagefind's prefix inside every gzipped index file
FILTER_HASH_LENGTH = 7  #: hex digits after "<lang>_", as Pagefind names filter files
META_HASH_LENGTH = 10  #: hex digits after "<lang>_", as Pagefind names meta files
INDEX_LOCK = threading.Lock()  #: serve may ask for a new index while one is being written


class SearchIndexError(RuntimeError):
    """Pagefind is missing or failed; the build stops before swapping the site in."""


def pagefind_binary() -> Path | None:
    override = os.environ.get("PAGEFIND_BINARY_PATH")
    if override:
        return Path(override)
    try:
        import pagefind_bin  # type: ignore[import-untyped]  # the wheel carrying the binary
    except ImportError:
        found = shutil.which("pagefind")
        return Path(found) if found else None
    candidate = Path(pagefind_bin.__file__).parent / "pagefind"
    return candidate if candidate.is_file() else None


def index_site(site_dir: Path) -> None:
    """Index every HTML page under site_dir into site_dir/pagefind/ (replaced whole)."""
    binary = pagefind_binary()
    if binary is None:
        raise SearchIndexError(
            "the Pagefind binary was not found; install it with pip install 'pagefind[bin]' "
            "or set 'search: false' in config.yaml"
        )
    site_dir = site_dir.absolute()
    with INDEX_LOCK:
        fresh = site_dir / f".{BUNDLE_DIR}.new-{os.getpid()}"
        shutil.rmtree(fresh, ignore_errors=True)
        try:
            run_pagefind(binary, site_dir, fresh)
            canonicalize_bundle(fresh)
            replace_bundle(fresh, site_dir / BUNDLE_DIR)
        except OSError as exc:  # e.g. serve swapped a new build in while we indexed
            raise SearchIndexError(
                f"could not write the search index into {site_dir}: {exc}; index again"
            ) from None
        except SearchIndexError as exc:
            # Pagefind exits 0 on a full disk, leaving empty files: say what happened.
            full = disk_full(site_dir)
            if full is not None:
                message = f"Pagefind could not write the search index: {full}"
                raise SearchIndexError(message) from None
            raise exc from None
        finally:
            shutil.rmtree(fresh, ignore_errors=True)


#: Less free space than this after Pagefind failed means the disk was what stopped it.
_NEARLY_FULL_BYTES = 1 << 20


def disk_full(folder: Path) -> str | None:
    """"the disk holding X is full (N KB free)" when it nearly is, else None."""
    try:
        stats = os.statvfs(folder)
    except (OSError, AttributeError):
        return None
    free = stats.f_bavail * stats.f_frsize
    if free >= _NEARLY_FULL_BYTES:
        return None
    return f"the disk holding '{folder}' is full ({free // 1024} KB free)"


def run_pagefind(binary: Path, site_dir: Path, bundle: Path) -> None:
    try:
        process = subprocess.run(
            [
                str(binary),
                "--site",
                str(site_dir),
                "--output-path",
                str(bundle),
                "--exclude-selectors",
                EXCLUDE_SELECTORS,
                "--quiet",
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
    except OSError as exc:
        raise SearchIndexError(f"Pagefind could not be started ({binary}): {exc}") from None
    if process.returncode != 0:
        raise SearchIndexError(
            f"Pagefind failed ({process.returncode}): "
            f"{(process.stderr or process.stdout).strip()[-2000:]}"
        )


def replace_bundle(fresh: Path, target: Path) -> None:
    """Swap the new bundle in with renames (the old one is removed after)."""
    old = target.with_name(f".{BUNDLE_DIR}.old-{os.getpid()}")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists() or target.is_symlink():
        os.rename(target, old)
    os.rename(fresh, target)
    shutil.rmtree(old, ignore_errors=True)


# -- deterministic bundle ---------------------------------------------------------------


def canonicalize_bundle(bundle: Path) -> bool:
    """Rewrite filter/meta files in a run-independent order; False if the format is unknown."""
    entry_path = bundle / "pagefind-entry.json"
    try:
        entry = json.loads(entry_path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise SearchIndexError(f"Pagefind wrote no readable pagefind-entry.json: {exc}") from None
    if not str(entry.get("version", "")).startswith(KNOWN_FORMAT):
        return False
    languages = entry.get("languages")
    if not isinstance(languages, dict):
        raise SearchIndexError("unexpected pagefind-entry.json: no 'languages' object")
    for language, info in sorted(languages.items()):
        if not isinstance(info, dict) or not isinstance(info.get("hash"), str):
            raise SearchIndexError(f"unexpected pagefind-entry.json entry for {language!r}")
        info["hash"] = _canonicalize_language(bundle, language, info["hash"])
    # serde_json's compact form, as Pagefind writes it
    entry_path.write_text(
        json.dumps(entry, ensure_ascii=False, separators=(",", ":")), "utf-8"
    )
    return True


def _canonicalize_language(bundle: Path, language: str, meta_hash: str) -> str:
    """Sort one language's filters; returns the new meta hash."""
    meta_path = bundle / f"pagefind.{meta_hash}.pf_meta"
    meta = read_index_file(meta_path)
    if not (isinstance(meta, list) and len(meta) > 3 and _is_pairs_of_str(meta[3])):
        raise SearchIndexError(f"unexpected Pagefind meta layout in {meta_path.name}")
    old_paths = [bundle / "filter" / f"{old_hash}.pf_filter" for _, old_hash in meta[3]]
    # read every filter before writing any: a new name may equal another file's old name
    sorted_filters = {
        name: _sorted_filter(read_index_file(path), path.name)
        for (name, _), path in zip(meta[3], old_paths, strict=True)
    }
    for path in old_paths:
        path.unlink()
    taken: set[str] = set()
    filters: list[list[str]] = []
    for name, data in sorted(sorted_filters.items()):
        new_hash = unique_name(language, encode_index(data), taken, FILTER_HASH_LENGTH)
        write_index_file(bundle / "filter" / f"{new_hash}.pf_filter", data)
        filters.append([name, new_hash])
    meta[3] = filters
    for chunk in meta[2] if isinstance(meta[2], list) else ():
        if not (isinstance(chunk, list) and len(chunk) == 3 and isinstance(chunk[2], str)):
            raise SearchIndexError(f"unexpected Pagefind index chunk entry in {meta_path.name}")
        chunk_path = bundle / "index" / f"{chunk[2]}.pf_index"
        if chunk_path.exists():  # (never checked before this step either)
            recompress(chunk_path)
    new_meta_hash = unique_name(language, encode_index(meta), set(), META_HASH_LENGTH)
    meta_path.unlink()
    write_index_file(bundle / f"pagefind.{new_meta_hash}.pf_meta", meta)
    return new_meta_hash


def _is_pairs_of_str(value: object) -> bool:
    return isinstance(value, list) and all(
        isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)
        for pair in value
    )


def _sorted_filter(data: object, shown: str) -> list[object]:
    """[filter, [[value, [pages]], ...]] with the values in code point order."""
    if not (
        isinstance(data, list)
        and len(data) == 2
        and isinstance(data[0], str)
        and isinstance(data[1], list)
        and all(
            isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)
            for item in data[1]
        )
    ):
        raise SearchIndexError(f"unexpected Pagefind filter layout in {shown}")
    values: list[list[object]] = data[1]
    return [data[0], sorted(values, key=lambda item: str(item[0]))]


def unique_name(language: str, encoded: bytes, taken: set[str], length: int) -> str:
    digest = hashlib.sha256(encoded).hexdigest()
    while True:
        name = f"{language}_{digest[:length]}"
        if name not in taken or length >= len(digest):
            taken.add(name)
            return name
        length += 1


def _read_signed(path: Path) -> bytes:
    """A Pagefind index file, gunzipped, its signature checked (still at the front)."""
    try:
        raw = gzip.decompress(path.read_bytes())
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise SearchIndexError(f"cannot read Pagefind file {path.name}: {exc}") from None
    if not raw.startswith(SIGNATURE):
        raise SearchIndexError(f"unexpected Pagefind file {path.name}: no signature")
    return raw


def read_index_file(path: Path) -> object:
    body = _read_signed(path)[len(SIGNATURE) :]
    try:
        value, end = cbor_decode(body)
    except (ValueError, IndexError, struct.error) as exc:
        raise SearchIndexError(f"unexpected Pagefind file {path.name}: {exc}") from None
    if end != len(body) or cbor_encode(value) != body:
        raise SearchIndexError(f"unexpected Pagefind file {path.name}: CBOR does not round-trip")
    return value


def recompress(path: Path) -> None:
    """Re-gzip one index chunk with Python's zlib, as the incremental writer compresses.

    Pagefind names a chunk by a hash of its uncompressed bytes, so the name stays; only the
    deflate stream changes (Pagefind's Rust deflate and zlib pick different matches for the
    same input). Both builds then write the same bytes for the same chunk.
    """
    path.write_bytes(compress(_read_signed(path), CHUNK_LEVEL))


#: zlib level for index chunks: level 9 costs ~3x the time for 0.6% fewer bytes (1,000
#: articles: 3.1 MB of chunks, 0.17 s at 6, 0.51 s at 9; 1.771 MB vs Pagefind's 1.762 MB)
CHUNK_LEVEL = 6


def compress(raw: bytes, level: int = 9) -> bytes:
    """gzip with mtime 0: equal content gives equal bytes."""
    return gzip.compress(raw, compresslevel=level, mtime=0)


def encode_index(value: object) -> bytes:
    return SIGNATURE + cbor_encode(value)


def write_index_file(path: Path, value: object) -> None:
    path.write_bytes(compress(encode_index(value)))


# -- the CBOR subset Pagefind uses (RFC 8949, definite lengths, shortest heads) ----------


@dataclass(frozen=True, slots=True)
class CborSimple:
    """A CBOR major-type-7 item (false/true/null/float) kept as its exact bytes."""

    raw: bytes


def cbor_decode(data: bytes, position: int = 0) -> tuple[object, int]:
    """One CBOR item at position -> (value, position after it).

    Integers -> int, text -> str, bytes -> bytes, arrays -> list, maps -> dict (insertion
    order kept), major type 7 -> CborSimple. Indefinite lengths and tags are refused.
    """
    head = data[position]
    major, info = head >> 5, head & 0x1F
    if major == 7:
        size = {20: 0, 21: 0, 22: 0, 23: 0, 24: 1, 25: 2, 26: 4, 27: 8}.get(info)
        if size is None:
            raise ValueError(f"unsupported simple value {info}")
        end = position + 1 + size
        return CborSimple(data[position:end]), end
    argument, position = _read_argument(data, position + 1, info)
    if major == 0:
        return argument, position
    if major == 1:
        return -1 - argument, position
    if major in (2, 3):
        chunk = data[position : position + argument]
        if len(chunk) != argument:
            raise ValueError("truncated string")
        return (chunk.decode("utf-8") if major == 3 else chunk), position + argument
    if major == 4:
        items: list[object] = []
        for _ in range(argument):
            item, position = cbor_decode(data, position)
            items.append(item)
        return items, position
    if major == 5:
        mapping: dict[object, object] = {}
        for _ in range(argument):
            key, position = cbor_decode(data, position)
            mapping[key], position = cbor_decode(data, position)
        return mapping, position
    raise ValueError(f"unsupported CBOR major type {major}")


def _read_argument(data: bytes, position: int, info: int) -> tuple[int, int]:
    if info < 24:
        return info, position
    size = {24: 1, 25: 2, 26: 4, 27: 8}.get(info)
    if size is None:
        raise ValueError("indefinite lengths are not supported")
    chunk = data[position : position + size]
    if len(chunk) != size:
        raise ValueError("truncated head")
    return int.from_bytes(chunk, "big"), position + size


def cbor_encode(value: object) -> bytes:
    """The inverse of `cbor_decode`, with the shortest head for every length and integer."""
    out = bytearray()
    _encode_into(out, value)
    return bytes(out)


def _encode_into(out: bytearray, value: object) -> None:
    if isinstance(value, CborSimple):
        out += value.raw
    elif isinstance(value, bool):
        raise ValueError("booleans are read as CborSimple; write them back the same way")
    elif isinstance(value, int):
        if value >= 0:
            _head(out, 0, value)
        else:
            _head(out, 1, -1 - value)
    elif isinstance(value, str):
        encoded = value.encode("utf-8")
        _head(out, 3, len(encoded))
        out += encoded
    elif isinstance(value, bytes):
        _head(out, 2, len(value))
        out += value
    elif isinstance(value, list):
        _head(out, 4, len(value))
        for item in value:
            _encode_into(out, item)
    elif isinstance(value, dict):
        _head(out, 5, len(value))
        for key, item in value.items():
            _encode_into(out, key)
            _encode_into(out, item)
    else:
        raise ValueError(f"cannot encode {type(value).__name__} as CBOR")


def _head(out: bytearray, major: int, argument: int) -> None:
    if argument < 24:
        out.append(major << 5 | argument)
        return
    for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if argument < 1 << (8 * size):
            out.append(major << 5 | info)
            out += argument.to_bytes(size, "big")
            return
    raise ValueError("integer too large for CBOR")
