"""Content source files -> `Page`s: read strictly, split the front matter, convert the body.

Input: a page `SourceFile`, the `Config`, a Markdown engine and today's date.
Output: a `Page` (or None) and its diagnostics. Reading is strict: the text must be UTF-8 (a
BOM is dropped, CRLF is normalised) and free of NUL and other control characters, so nothing
unprintable reaches the HTML and our placeholders cannot collide with user text.
Each page depends only on its own bytes, the markup options and the glossary, which is what
lets the incremental builder (kbgen/incremental/loading.py) cache conversions and run them in
worker processes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from kbgen.config_types import Config
from kbgen.diagnostics import Diagnostic, error
from kbgen.discover import SourceFile
from kbgen.frontmatter import SplitPage, parse_front_matter, split_front_matter
from kbgen.model import (
    MAX_SLUG_LENGTH,
    FrontMatter,
    Markup,
    Page,
    PageKind,
    slugify,
)

if TYPE_CHECKING:
    from kbgen.markup import MarkupEngine

SLUG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_CONTROL_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # C0 and C1 controls
MAX_PAGE_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class PageSource:
    """A page's identity and decoded text, before parsing."""

    file: SourceFile
    text: str
    digest: str
    kind: PageKind
    section: str | None
    slug: str


def read_source(file: SourceFile) -> tuple[bytes | None, list[Diagnostic]]:
    try:
        data = file.path.read_bytes()
    except PermissionError:
        return None, [
            error(
                file.shown,
                None,
                None,
                "cannot read the file: permission denied",
                "make the file readable (chmod u+r)",
            )
        ]
    except OSError as exc:
        return None, [
            error(
                file.shown,
                None,
                None,
                f"cannot read the file: {exc.strerror}",
                "check that it still exists and is a readable file",
            )
        ]
    if len(data) > MAX_PAGE_BYTES:
        return None, [
            error(
                file.shown,
                None,
                None,
                f"the file is {len(data) // (1024 * 1024)} MB; pages are limited "
                f"to {MAX_PAGE_BYTES // (1024 * 1024)} MB",
                "split the article",
            )
        ]
    return data, []


def decode_text(data: bytes, shown: str) -> tuple[str | None, list[Diagnostic]]:
    """UTF-8 text with BOM dropped and LF line ends; control characters are errors."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        binary = b"\x00" in data[:8192]
        message = (
            "the file is binary, not Markdown text"
            if binary
            else f"the file is not valid UTF-8 (byte 0x{data[exc.start]:02x})"
        )
        return None, [
            error(
                shown,
                line,
                exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1,
                message,
                "save the file as UTF-8 text",
            )
        ]
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    match = _CONTROL_RE.search(text)
    if match is not None:
        line = text.count("\n", 0, match.start()) + 1
        col = match.start() - (text.rfind("\n", 0, match.start()) + 1) + 1
        name = (
            "a NUL byte" if match[0] == "\x00" else f"the control character U+{ord(match[0]):04X}"
        )
        return None, [
            error(
                shown,
                line,
                col,
                f"the file contains {name}",
                "remove it; only tabs and line breaks are allowed",
            )
        ]
    return text, []


def identify(
    file: SourceFile, text: str, data: bytes
) -> tuple[PageSource | None, list[Diagnostic]]:
    parts = PurePosixPath(file.rel).parts
    digest = hashlib.sha256(data).hexdigest()
    if parts == ("index.md",):
        return PageSource(file, text, digest, "home", None, "index"), []
    kind: PageKind = "page" if len(parts) == 1 else "article"
    # a top-level file is a standalone page (discover.py refused names that clash)
    section, name = (None, parts[0]) if len(parts) == 1 else (parts[0], parts[1])
    if name == "_index.md" and section is not None:
        return PageSource(file, text, digest, "section", section, section), []
    slug = name[: -len(".md")]
    if not SLUG_RE.match(slug):
        suggestion = slugify(slug) or "article"
        return None, [
            error(
                file.shown,
                None,
                None,
                f"file name '{name}' cannot be a URL slug",
                f"rename it to '{suggestion}.md' (letters, digits, '-' and '_')",
            )
        ]
    if len(slug) > MAX_SLUG_LENGTH:
        # Its page is <slug>.html (or <slug>/index.html): the name must fit in 255 bytes.
        return None, [
            error(
                file.shown,
                None,
                None,
                f"file name '{name[:40]}...' is too long: {len(slug)} characters before '.md', "
                "more than a page's file name can have",
                f"rename it to a slug of at most {MAX_SLUG_LENGTH} characters",
            )
        ]
    return PageSource(file, text, digest, kind, section, slug), []


@dataclass(frozen=True, slots=True)
class PageOutline:
    """A page without its converted body: what the build state keeps between runs."""

    rel: str
    source: str
    kind: PageKind
    section: str | None
    slug: str
    meta: FrontMatter
    body_line: int
    digest: str

    def with_markup(self, markup: Markup) -> Page:
        return Page(
            rel=self.rel,
            source=self.source,
            kind=self.kind,
            section=self.section,
            slug=self.slug,
            meta=self.meta,
            markup=markup,
            body_line=self.body_line,
            digest=self.digest,
        )



def parse_outline(
    source: PageSource, config: Config, today: dt.date
) -> tuple[PageOutline | None, SplitPage | None, list[Diagnostic]]:
    """Front matter of one decoded page (cheap); the body is left for Markdown conversion."""
    shown = source.file.shown
    split, diagnostics = split_front_matter(source.text, shown)
    if split is None:
        return None, None, diagnostics
    section = config.section(source.section) if source.section else None
    meta, meta_diagnostics = parse_front_matter(
        split,
        shown,
        section,
        today,
        config.review_interval_days,
        is_article=source.kind == "article",
    )
    diagnostics += meta_diagnostics
    if meta is None:
        return None, split, diagnostics
    outline = PageOutline(
        rel=source.file.rel,
        source=shown,
        kind=source.kind,
        section=source.section,
        slug=source.slug,
        meta=meta,
        body_line=split.body_line,
        digest=source.digest,
    )
    return outline, split, diagnostics


def markup_problems(shown: str, markup: Markup) -> list[Diagnostic]:
    return [error(shown, line, col, message, hint) for line, col, message, hint in markup.problems]


def parse_page(
    source: PageSource, config: Config, engine: MarkupEngine, today: dt.date
) -> tuple[Page | None, list[Diagnostic]]:
    """Front matter + Markdown for one decoded page; the expensive, cacheable step."""
    outline, split, diagnostics = parse_outline(source, config, today)
    if split is None:
        return None, diagnostics
    markup = engine.convert(split.body, split.body_line)
    diagnostics += markup_problems(source.file.shown, markup)
    return (outline.with_markup(markup) if outline is not None else None), diagnostics


def load_page(
    file: SourceFile, config: Config, engine: MarkupEngine, today: dt.date
) -> tuple[Page | None, list[Diagnostic]]:
    data, diagnostics = read_source(file)
    if data is None:
        return None, diagnostics
    text, diagnostics = decode_text(data, file.shown)
    if text is None:
        return None, diagnostics
    source, diagnostics = identify(file, text, data)
    if source is None:
        return None, diagnostics
    return parse_page(source, config, engine, today)
