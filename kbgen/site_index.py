"""The knowledge graph every later stage reads: `SiteIndex`, and the key of each page.

Input: none (plain types; resolve.py fills them).
Output: `SiteIndex` (pages by key, where each link points, backlinks with context, tags,
section order and neighbours, related pages, references and who cites them, the glossary,
timelines) and `page_key`, the key a page has in it (`HOME_KEY` for the home page).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kbgen.model import Backlink, GlossaryTerm, Page, Reference, ResolvedLink

if TYPE_CHECKING:  # the timeline's module is loaded only by a build that has one
    from kbgen.timeline import Timeline

HOME_KEY = "_home"


def page_key(page: Page) -> str:
    """Unique key: the slug for articles; reserved forms that no slug can take otherwise."""
    if page.kind == "home":
        return HOME_KEY
    if page.kind == "section":
        return f"_section:{page.section}"
    if page.kind == "page":  # standalone top-level pages: apart from articles' slugs
        return f"_page:{page.slug}"
    return page.slug


@dataclass(frozen=True, slots=True)
class SiteIndex:
    pages: Mapping[str, Page]  #: page key -> page (drafts only when shown)
    links: Mapping[str, tuple[ResolvedLink | None, ...]]  #: key -> target of each link
    backlinks: Mapping[str, tuple[Backlink, ...]]  #: key -> pages linking to it
    outbound: Mapping[str, frozenset[str]]  #: key -> keys it links to
    pages_by_tag: Mapping[str, tuple[str, ...]]
    articles_by_section: Mapping[str, tuple[str, ...]]  #: in display order
    #: article key -> (previous, next) in its section. Pages read this, not the section's
    #: whole order, so a retitled article re-renders its neighbours, not its whole section
    neighbors: Mapping[str, tuple[str | None, str | None]]
    section_sizes: Mapping[str, int]  #: section -> number of articles (navigation counts)
    related: Mapping[str, tuple[str, ...]]
    references: Mapping[str, Reference]
    citing_pages: Mapping[str, tuple[str, ...]]  #: reference key -> page keys
    glossary: tuple[GlossaryTerm, ...]
    #: article key -> the timeline it shows (content/timeline.yaml). A mapping, so a page
    #: records reading only its own entry and a timeline edit re-renders only its page
    timelines: Mapping[str, Timeline] = field(default_factory=dict)

    def prev_next(self, key: str) -> tuple[str | None, str | None]:
        return self.neighbors.get(key, (None, None))
