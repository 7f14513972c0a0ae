"""The keys conversions are cached under, and the identity of the generator.

Input: the installed kbgen (its version and its source files' stamps), the libraries whose
output is cached (Python-Markdown, Pygments, nh3, Jinja2; found without importing them), the
Markdown options, the glossary, and each page's body.
Output: `generator_id()` (an upgrade or edit of any of them changes it, which makes every
cached conversion and the saved build state unusable) and `markup_key()`, the key of one
conversion: a digest of the body, its first line, the engine (`engine_key`) and the glossary
(`glossary_digest`), so an entry can only ever be read for exactly the input that made it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from kbgen import __version__
from kbgen.incremental.sealing import FORMAT
from kbgen.model import GlossaryTerm


def generator_id() -> str:
    """kbgen and the libraries whose output we cache: an upgrade of any invalidates all.

    Each library is identified by its installed distribution's version (from the
    `*.dist-info` folder beside it) and the size and mtime of its `__init__`, found without
    importing it: importing Markdown and Pygments (or importlib.metadata) just to ask would
    cost more than a whole no-change build's check.
    """
    parts = [_library_stamp(name) for name in ("markdown", "pygments", "nh3", "jinja2")]
    return f"kbgen {__version__} {_source_stamp()}|{'|'.join(parts)}|fmt {FORMAT}"


def _library_stamp(name: str) -> str:
    import importlib.util

    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        return f"{name} missing"
    origin = Path(spec.origin)
    folder = origin.parent.parent if origin.name == "__init__.py" else origin.parent
    prefix = f"{name.lower()}-"
    versions = sorted(
        entry[len(prefix) : -len(".dist-info")]
        for entry in os.listdir(folder)
        if entry.lower().startswith(prefix) and entry.endswith(".dist-info")
    )
    try:
        stat = origin.stat()
    except OSError:
        return f"{name} missing"
    return f"{name} {','.join(versions) or '?'} {stat.st_size}:{stat.st_mtime_ns}"


def _source_stamp() -> str:
    """Size and mtime of kbgen's own modules: editing kbgen (without bumping its version,
    as in development) must not reuse conversions or graphs made by the old code."""
    # kbgen/, not this file's folder: since the move into kbgen/incremental/ the stamp saw
    # only this package, and an edit to kbgen/markup.py reused the old conversions.
    # os.walk with plain strings, not Path.rglob: this runs at the start of every build, and
    # a Path object for each of the ~250 entries (__pycache__ too) cost more than the stats.
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    stamps = []
    for folder, subfolders, files in os.walk(package):
        subfolders[:] = sorted(name for name in subfolders if name != "__pycache__")
        inside = os.path.relpath(folder, package).replace(os.sep, "/")
        prefix = "" if folder == package else inside + "/"
        for name in sorted(files):
            if name.endswith((".py", ".js", ".css")):
                stat = os.stat(os.path.join(folder, name))
                stamps.append(f"{prefix}{name}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(stamps).encode()).hexdigest()[:16]


def digest_text(*parts: str) -> str:
    """A stable digest of several strings (NUL-separated, so ('ab','c') != ('a','bc'))."""
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(part.encode("utf-8", "surrogatepass"))
        hasher.update(b"\x00")
    return hasher.hexdigest()


def glossary_digest(glossary: Iterable[GlossaryTerm]) -> str:
    """What Markdown conversion reads from the glossary: ids, forms and definitions."""
    return digest_text(
        *(f"{t.id}\x1f{t.term}\x1f{t.definition}\x1f{chr(31).join(t.aliases)}" for t in glossary)
    )


def engine_key(generator: str, markdown_key: str, glossary: str) -> str:
    """Everything a conversion depends on besides the body itself."""
    return digest_text(generator, markdown_key, glossary)


def markup_key(engine: str, body_line: int, body: str) -> str:
    """The cache key of one conversion: the engine plus the exact body and where it starts."""
    return digest_text(engine, str(body_line), body)
