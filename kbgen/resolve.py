"""Pages + references + glossary -> `SiteIndex` (the knowledge graph) and its diagnostics.

Input: every loaded page, the references by key, the glossary, the timeline, and whether
drafts are shown.
Output: `Resolution`: the `SiteIndex` (site_index.py: pages by key, where each link points,
backlinks with context, tags, section order (prev/next), related pages, which pages cite each
reference), its diagnostics, and the tables the links were resolved against. Diagnostics:
slug collisions (naming both files), unknown or ambiguous link targets and anchors
(resolve_links.py), links from published pages to drafts, unknown citation keys
(resolve_citations.py), unknown `related` slugs (resolve_related.py) and glossary article
slugs; warnings for orphan articles, articles without outbound links, and unused references.

Everything here is dictionaries over N pages (bounded fan-out, no O(N^2)). This is the plain
stage: it resolves every page, every time. Updating a previous resolution after body edits is
speed machinery and lives in kbgen/incremental/resolving.py, which calls `page_links` and
`citation_problems` for the edited pages.
"""

from __future__ import annotations

import posixpath
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from kbgen.config_types import Config
from kbgen.diagnostics import Diagnostic, did_you_mean, error, warning
from kbgen.model import Backlink, GlossaryTerm, Page, Reference, ResolvedLink
from kbgen.resolve_citations import citation_problems, citing_pages
from kbgen.resolve_links import Lookup, name_table, page_links
from kbgen.resolve_related import related_pages
from kbgen.site_index import SiteIndex, page_key

if TYPE_CHECKING:  # the timeline's module is loaded only by a build that has one
    from kbgen.timeline import Timeline


def _neighbors(
    section_order: Mapping[str, tuple[str, ...]],
) -> dict[str, tuple[str | None, str | None]]:
    found: dict[str, tuple[str | None, str | None]] = {}
    for keys in section_order.values():
        for position, key in enumerate(keys):
            previous = keys[position - 1] if position > 0 else None
            following = keys[position + 1] if position + 1 < len(keys) else None
            found[key] = (previous, following)
    return found


def article_sort_key(page: Page) -> tuple[bool, int, str, str]:
    order = page.meta.order
    return (order is None, order or 0, page.meta.title.lower(), page.slug)


@dataclass(frozen=True, slots=True)
class Resolution:
    """One resolve's result: the index, its diagnostics, and how they came about.

    The diagnostics are kept in two parts besides their sum, `local` (each page's own link
    and citation problems) and `shared` (every site-wide one), with `lookup`, the tables the
    links were resolved against: so a page's links can be looked up again on their own
    (`page_links`, `citation_problems`), as kbgen/incremental/resolving.py does after a
    body edit.
    """

    index: SiteIndex
    diagnostics: list[Diagnostic]
    lookup: Lookup  #: its `everything` holds every page given, drafts included
    local: Mapping[str, tuple[Diagnostic, ...]]  #: key -> problems of its links and citations
    shared: tuple[Diagnostic, ...]  #: every other diagnostic


def data_paths(config: Config) -> tuple[str, str]:
    """Where `references.yaml` and `glossary.yaml` are, as messages show them."""
    return (
        config.rel(config.content_dir / "references.yaml"),
        config.rel(config.content_dir / "glossary.yaml"),
    )


def resolve_site(
    pages: Iterable[Page],
    references: Mapping[str, Reference],
    glossary: Sequence[GlossaryTerm],
    config: Config,
    show_drafts: bool,
    references_path: str | None = None,
    glossary_path: str | None = None,
    unloadable: Iterable[str] = (),
    timeline: Timeline | None = None,
) -> Resolution:
    """Resolve the whole site from its pages (and the optional timeline data file).

    `unloadable`: content rels of page files that could not be loaded (their own errors are
    reported); a link to one is not reported again as a link to nothing. The data files'
    paths (for messages) default to where the config puts them.
    """
    default_references, default_glossary = data_paths(config)
    shared: list[Diagnostic] = []
    all_pages = sorted(pages, key=lambda p: p.rel)
    drafts = {page_key(p): p for p in all_pages if p.meta.draft and not show_drafts}
    by_key = _unique_pages([p for p in all_pages if page_key(p) not in drafts], shared)
    everything = {**{page_key(p): p for p in drafts.values()}, **by_key}
    names = name_table(everything.values())
    by_rel = {p.rel: page_key(p) for p in everything.values()}
    lookup = Lookup(
        names, by_rel, everything, frozenset(drafts), show_drafts, tuple(sorted(unloadable))
    )
    references_path = references_path or default_references
    links = resolve_page_links(by_key, lookup, references, references_path)
    return index_site(
        by_key,
        lookup,
        links,
        references,
        glossary,
        shared,
        references_path,
        glossary_path or default_glossary,
        timeline,
    )


@dataclass(frozen=True, slots=True)
class PageLinks:
    """What resolving every page's links and citations found: the input of `index_site`.

    kbgen/incremental/resolving.py builds one from the previous build's (the pages whose
    links cannot have changed keep their targets) and hands it to `index_site`, so the
    site-wide tables are always made here.
    """

    targets: dict[str, tuple[ResolvedLink | None, ...]]  #: key -> target of each link
    backlinks: dict[str, list[Backlink]]  #: key -> pages linking to it, in page order
    outbound: dict[str, set[str]]  #: key -> keys it links to
    local: dict[str, tuple[Diagnostic, ...]]  #: key -> problems of its links and citations
    cited: dict[str, frozenset[str]]  #: key -> the reference keys it cites
    unconverted: bool  #: some page's body could not be converted (it has its own error)


class LinkResult(NamedTuple):
    """One page's links and citations, resolved: what `collect_links` gathers."""

    targets: tuple[ResolvedLink | None, ...]  #: the target of each link
    firsts: dict[str, str]  #: page linked to -> context of the first link there, in order
    problems: tuple[Diagnostic, ...]  #: its link and citation errors
    cited: frozenset[str]  #: the reference keys it cites


def link_result(
    page: Page,
    key: str,
    lookup: Lookup,
    references: Mapping[str, Reference],
    references_path: str,
) -> LinkResult:
    """Resolve one page's links and check its citations."""
    problems: list[Diagnostic] = []
    targets, firsts = page_links(page, key, lookup, problems)
    problems += citation_problems(page, references, references_path)
    return LinkResult(targets, firsts, tuple(problems), frozenset(c.key for c in page.citations))


def collect_links(results: Iterable[tuple[str, LinkResult]], unconverted: bool) -> PageLinks:
    """The listed pages' results (in page order: backlinks keep it) as one `PageLinks`."""
    links = PageLinks({}, defaultdict(list), {}, {}, {}, unconverted)
    for key, result in results:
        links.targets[key] = result.targets
        links.outbound[key] = set(result.firsts)
        for target_key, context in result.firsts.items():
            links.backlinks[target_key].append(Backlink(key, context))
        if result.problems:
            links.local[key] = result.problems
        links.cited[key] = result.cited
    return links


def resolve_page_links(
    by_key: Mapping[str, Page],
    lookup: Lookup,
    references: Mapping[str, Reference],
    references_path: str,
) -> PageLinks:
    """Every listed page's links and citations, in page order."""
    results = (
        (key, link_result(page, key, lookup, references, references_path))
        for key, page in by_key.items()
    )
    return collect_links(results, any(page.markup.problems for page in by_key.values()))


def _tags_and_sections(
    by_key: Mapping[str, Page],
) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    """Tag -> its articles by title; section -> its articles in display order."""
    pages_by_tag: dict[str, list[str]] = defaultdict(list)
    articles_by_section: dict[str, list[Page]] = defaultdict(list)
    for key, page in by_key.items():
        if page.kind == "article":
            for tag in page.meta.tags:
                pages_by_tag[tag].append(key)
            if page.section is not None:
                articles_by_section[page.section].append(page)
    section_order = {
        section: tuple(page_key(p) for p in sorted(members, key=article_sort_key))
        for section, members in articles_by_section.items()
    }
    tags_sorted = {
        tag: tuple(sorted(keys, key=lambda k: (by_key[k].meta.title.lower(), k)))
        for tag, keys in sorted(pages_by_tag.items())
    }
    return tags_sorted, section_order


def index_site(
    by_key: dict[str, Page],
    lookup: Lookup,
    links: PageLinks,
    references: Mapping[str, Reference],
    glossary: Sequence[GlossaryTerm],
    shared: list[Diagnostic],
    references_path: str,
    glossary_path: str,
    timeline: Timeline | None = None,
) -> Resolution:
    """The site-wide tables (tags, sections, neighbours, citing pages, related pages,
    backlinks by title) and checks, from the listed pages' front matter and `links`: it
    reads no page body, so a caller holding the links of unchanged pages need not load them.
    """
    everything, unloadable = lookup.everything, lookup.unloadable
    tags_sorted, section_order = _tags_and_sections(by_key)
    # A page that could not be loaded, or whose body could not be converted, has its own
    # error; what it cites, links to or names as related is unknown, so the warnings that
    # judge the whole site (never cited, orphans, no links) would only repeat that error.
    incomplete = bool(unloadable) or links.unconverted
    timelines = _timelines(timeline, by_key, shared)
    citing = citing_pages(links.cited, references, shared, references_path, incomplete, timelines)
    _check_glossary(glossary, everything, shared, glossary_path)
    unloaded = frozenset(posixpath.basename(rel)[: -len(".md")] for rel in unloadable)
    related = related_pages(by_key, links.outbound, links.backlinks, tags_sorted, unloaded, shared)
    if not incomplete:
        _graph_warnings(by_key, links.outbound, links.backlinks, shared)
    index = SiteIndex(
        pages=by_key,
        links=links.targets,
        backlinks=_sorted_backlinks(links.backlinks, by_key),
        outbound={k: frozenset(v) for k, v in links.outbound.items()},
        pages_by_tag=tags_sorted,
        articles_by_section=section_order,
        neighbors=_neighbors(section_order),
        section_sizes={section: len(keys) for section, keys in section_order.items()},
        related=related,
        references=dict(references),
        citing_pages=citing,
        glossary=tuple(glossary),
        timelines=timelines,
    )
    return Resolution(
        index=index,
        diagnostics=all_diagnostics(shared, links.local),
        lookup=lookup,
        local=links.local,
        shared=tuple(shared),
    )


def _sorted_backlinks(
    backlinks: Mapping[str, list[Backlink]], by_key: Mapping[str, Page]
) -> dict[str, tuple[Backlink, ...]]:
    """The backlinks of each listed page, by the linking page's title, then key."""
    return {
        k: tuple(sorted(v, key=lambda b: (by_key[b.source_slug].meta.title.lower(), b.source_slug)))
        for k, v in backlinks.items()
        if k in by_key
    }


def all_diagnostics(
    shared: Iterable[Diagnostic], local: Mapping[str, tuple[Diagnostic, ...]]
) -> list[Diagnostic]:
    """The site-wide diagnostics, then each page's own."""
    found = list(shared)
    for problems in local.values():
        found += problems
    return found


def _unique_pages(pages: list[Page], diagnostics: list[Diagnostic]) -> dict[str, Page]:
    by_key: dict[str, Page] = {}
    by_lower: dict[str, Page] = {}
    for page in pages:
        key = page_key(page)
        if key in by_key:
            diagnostics.append(
                error(
                    page.source,
                    None,
                    None,
                    f"duplicate slug '{page.slug}': also used by {by_key[key].source}",
                    "slugs are unique across sections; rename one of the files",
                )
            )
            continue
        lowered = key.lower()
        if lowered in by_lower:
            other = by_lower[lowered]
            diagnostics.append(
                error(
                    page.source,
                    None,
                    None,
                    f"slug '{page.slug}' differs only in case from '{other.slug}' ({other.source})",
                    "URLs clash on case-insensitive file systems; rename one",
                )
            )
            continue
        by_key[key] = page
        by_lower[lowered] = page
    return by_key


def _timelines(
    timeline: Timeline | None, pages: Mapping[str, Page], diagnostics: list[Diagnostic]
) -> dict[str, Timeline]:
    """The timeline by the key of the article that shows it; an error when `page` names
    no article."""
    if timeline is None:
        return {}
    shown_on = pages.get(timeline.page)
    if shown_on is not None and shown_on.kind == "article":
        return {timeline.page: timeline}
    slugs = sorted(p.slug for p in pages.values() if p.kind == "article")
    diagnostics.append(
        error(
            timeline.path,
            timeline.page_line,
            timeline.page_col,
            f"the timeline's page '{timeline.page}' is not an article",
            did_you_mean(timeline.page, slugs)
            or "give the slug of an article, e.g. "
            "'history-and-regulation' for content/<section>/history-and-regulation.md",
        )
    )
    return {}


def _check_glossary(
    glossary: Sequence[GlossaryTerm],
    pages: Mapping[str, Page],
    diagnostics: list[Diagnostic],
    glossary_path: str,
) -> None:
    slugs = [p.slug for p in pages.values() if p.kind == "article"]
    for term in glossary:
        if term.article is not None and term.article not in pages:
            diagnostics.append(
                error(
                    glossary_path,
                    term.line,
                    1,
                    f"glossary term '{term.term}' points to unknown article '{term.article}'",
                    did_you_mean(term.article, slugs) or "use an article slug",
                )
            )


def _graph_warnings(
    pages: Mapping[str, Page],
    outbound: Mapping[str, set[str]],
    backlinks: Mapping[str, list[Backlink]],
    diagnostics: list[Diagnostic],
) -> None:
    for key, page in pages.items():
        if page.kind != "article":
            continue
        if not backlinks.get(key):
            diagnostics.append(
                warning(
                    page.source,
                    1,
                    1,
                    "orphan article: no other page links to it",
                    f"link to it from a related article with [[{page.slug}]]",
                )
            )
        if not outbound.get(key):
            diagnostics.append(
                warning(
                    page.source,
                    1,
                    1,
                    "article has no links to other articles",
                    "link related ideas with [[slug]]",
                )
            )
