"""The data that flows between stages. No I/O and no third-party imports here.

Pages are immutable and relations are keys (slugs), never object pointers, so two builds can
be compared field by field and any stage can be run again on the same inputs.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

#: a `table` field's rows; each row is its (column name, cell text) pairs in declared order
TableValue = tuple[tuple[tuple[str, str], ...], ...]
FieldValue = str | float | bool | TableValue

#: The longest slug (a page's file name without `.md`, or a tag's URL form): a file name is
#: at most 255 bytes on Linux, macOS and Windows, and `<slug>.html` must fit in one.
MAX_SLUG_LENGTH = 250


def slugify(text: str) -> str:
    """Lowercase ASCII letters and digits joined by '-' ("" when there are none)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


#: "page": a standalone top-level page such as content/about.md (built to /about/)
PageKind = Literal["home", "section", "article", "page"]
LinkKind = Literal["wiki", "md", "anchor"]


@dataclass(frozen=True, slots=True)
class FrontMatter:
    title: str
    summary: str
    last_reviewed: dt.date | None
    #: 2-4 plain-language sentences shown first ("In short"); "" when the page has none
    in_short: str = ""
    tags: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    related: tuple[str, ...] = ()
    draft: bool = False
    order: int | None = None
    reviewed_by: tuple[str, ...] = ()
    fields: Mapping[str, FieldValue] = field(default_factory=dict)  #: the section's typed fields
    #: the references that `reference` cells of table fields name, with their positions
    field_citations: tuple[CiteRef, ...] = ()
    #: key -> (line, col) in the file, so later stages can point at the offending key
    key_positions: Mapping[str, tuple[int, int]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LinkRef:
    """An internal link as written in the source, in document order."""

    kind: LinkKind  #: [[x]], [t](x.md#a), or [t](#a) on the same page
    target: str  #: slug/title/alias for wiki links, the relative path for md links, "" for anchor
    anchor: str | None
    has_text: bool  #: False for [[slug]] whose text is the target's title
    line: int
    col: int
    context: str = ""  #: the sentence around the link, plain text with title placeholders


@dataclass(frozen=True, slots=True)
class CiteRef:
    key: str
    locator: str | None  #: e.g. "p. 12"
    line: int
    col: int


@dataclass(frozen=True, slots=True)
class Heading:
    level: int
    id: str
    text: str


@dataclass(frozen=True, slots=True)
class Markup:
    """What Markdown conversion yields; depends only on the body and the markup options."""

    html: str  #: with placeholders for internal URLs and link titles (see links.py)
    toc: tuple[Heading, ...]
    anchors: frozenset[str]
    links: tuple[LinkRef, ...]
    citations: tuple[CiteRef, ...]
    problems: tuple[tuple[int, int, str, str], ...] = ()  #: (line, col, message, hint) errors
    word_count: int = 0


@dataclass(frozen=True, slots=True)
class Page:
    rel: str  #: content-relative POSIX path, e.g. "mechanism/nmda.md"
    source: str  #: project-relative path used in messages, e.g. "content/mechanism/nmda.md"
    kind: PageKind
    section: str | None
    slug: str
    meta: FrontMatter
    markup: Markup
    body_line: int  #: file line of the first body line
    digest: str  #: hash of the file's bytes

    @property
    def title(self) -> str:
        return self.meta.title

    @property
    def citations(self) -> tuple[CiteRef, ...]:
        """Every citation: the body's, then the reference cells of its table fields (which
        are rendered after the body, so numbering follows reading order)."""
        return self.markup.citations + self.meta.field_citations

    @property
    def cited_keys(self) -> tuple[str, ...]:
        """Distinct citation keys in order of first citation (their display numbers)."""
        return tuple(dict.fromkeys(c.key for c in self.citations))

    def observable(self) -> tuple[object, ...]:
        """Everything other pages and site-wide checks can see of this page: equal for two
        versions of a page exactly when only its body (text, link wording, citation places)
        differs. The one definition; the incremental resolve relies on it."""
        return (
            self.kind,
            self.section,
            self.slug,
            self.meta,
            self.markup.anchors,
            tuple(heading.id for heading in self.markup.toc),
        )


@dataclass(frozen=True, slots=True)
class Reference:
    key: str
    type: str
    authors: tuple[str, ...]
    title: str
    container: str  #: journal or publisher
    year: int | None
    doi: str | None = None
    pmid: str | None = None
    pmcid: str | None = None
    url: str | None = None
    line: int = 0


@dataclass(frozen=True, slots=True)
class GlossaryTerm:
    id: str  #: anchor on the glossary page, e.g. "term-nmda-receptor"
    term: str
    definition: str
    aliases: tuple[str, ...] = ()
    article: str | None = None  #: slug of the article that explains it
    line: int = 0


@dataclass(frozen=True, slots=True)
class Backlink:
    source_slug: str
    context: str  #: the sentence around the link (plain text, may hold title placeholders)


@dataclass(frozen=True, slots=True)
class ResolvedLink:
    """Where link number n of a page points, after resolution."""

    slug: str
    anchor: str | None


@dataclass(frozen=True, slots=True)
class OutputFile:
    rel: str  #: output-relative POSIX path
    data: bytes
    node: str  #: the dependency-graph node that produced it, e.g. "page:nmda"
