"""Pages + references + glossary -> `SiteIndex` (the knowledge graph) and its diagnostics.

Input: every loaded page, the references by key, the glossary, and whether drafts are shown.
Output: `SiteIndex`: pages by key, where each link points, backlinks with context, tags,
section order (prev/next), related pages, which pages cite each reference. Diagnostics:
slug collisions (naming both files), unknown or ambiguous link targets and anchors (with
`file:line:col` and "did you mean"), links from published pages to drafts, unknown citation
keys, unknown `related` slugs and glossary article slugs; warnings for orphan articles,
articles without outbound links, and unused references.

Everything here is dictionaries over N pages (bounded fan-out, no O(N^2)). This is the plain
stage: it resolves every page, every time. Updating a previous resolution after body edits is
speed machinery and lives in kbgen/incremental/resolving.py, which calls `page_links` and
`citation_problems` from here for the edited pages.
"""

from __future__ import annotations

import difflib
import heapq
import posixpath
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from kbgen.config_types import Config
from kbgen.diagnostics import Diagnostic, did_you_mean, error, warning
from kbgen.links import resolve_relative_path
from kbgen.model import Backlink, GlossaryTerm, LinkRef, Page, Reference, ResolvedLink
from kbgen.timeline import Timeline

HOME_KEY = "_home"
RELATED_LIMIT = 5
FANOUT_CAP = 50  # candidates taken per shared tag/target when ranking related pages


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
    names = _name_table(everything.values())
    by_rel = {p.rel: page_key(p) for p in everything.values()}
    lookup = Lookup(
        names, by_rel, everything, frozenset(drafts), show_drafts, tuple(sorted(unloadable))
    )
    return _resolve_all(
        by_key,
        lookup,
        references,
        glossary,
        shared,
        references_path or default_references,
        glossary_path or default_glossary,
        timeline,
    )


def _resolve_all(
    by_key: dict[str, Page],
    lookup: Lookup,
    references: Mapping[str, Reference],
    glossary: Sequence[GlossaryTerm],
    shared: list[Diagnostic],
    references_path: str,
    glossary_path: str,
    timeline: Timeline | None = None,
) -> Resolution:
    everything, unloadable = lookup.everything, lookup.unloadable
    resolved: dict[str, tuple[ResolvedLink | None, ...]] = {}
    backlinks: dict[str, list[Backlink]] = defaultdict(list)
    outbound: dict[str, set[str]] = {}
    local: dict[str, tuple[Diagnostic, ...]] = {}
    for key, page in by_key.items():
        problems: list[Diagnostic] = []
        targets, firsts = page_links(page, key, lookup, problems)
        resolved[key] = targets
        outbound[key] = set(firsts)
        for target_key, context in firsts.items():
            backlinks[target_key].append(Backlink(key, context))
        problems += citation_problems(page, references, references_path)
        if problems:
            local[key] = tuple(problems)

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
    # A page that could not be loaded, or whose body could not be converted, has its own
    # error; what it cites, links to or names as related is unknown, so the warnings that
    # judge the whole site (never cited, orphans, no links) would only repeat that error.
    incomplete = bool(unloadable) or any(page.markup.problems for page in by_key.values())
    timelines = _timelines(timeline, by_key, shared)
    citing = _citing_pages(by_key, references, shared, references_path, incomplete, timelines)
    _check_glossary(glossary, everything, shared, glossary_path)
    unloaded = frozenset(posixpath.basename(rel)[: -len(".md")] for rel in unloadable)
    related = _related(by_key, outbound, backlinks, tags_sorted, unloaded, shared)
    if not incomplete:
        _graph_warnings(by_key, outbound, backlinks, shared)
    index = SiteIndex(
        pages=by_key,
        links=resolved,
        backlinks={
            k: tuple(
                sorted(v, key=lambda b: (by_key[b.source_slug].meta.title.lower(), b.source_slug))
            )
            for k, v in backlinks.items()
            if k in by_key
        },
        outbound={k: frozenset(v) for k, v in outbound.items()},
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
        diagnostics=all_diagnostics(shared, local),
        lookup=lookup,
        local=local,
        shared=tuple(shared),
    )


def all_diagnostics(
    shared: Iterable[Diagnostic], local: Mapping[str, tuple[Diagnostic, ...]]
) -> list[Diagnostic]:
    """The site-wide diagnostics, then each page's own."""
    found = list(shared)
    for problems in local.values():
        found += problems
    return found


@dataclass(frozen=True, slots=True)
class Lookup:
    """The tables a link is resolved against."""

    names: Mapping[str, set[str]]
    by_rel: Mapping[str, str]
    everything: Mapping[str, Page]
    hidden: frozenset[str]  #: drafts left out of this build
    show_drafts: bool
    unloadable: tuple[str, ...] = ()  #: rels of page files that could not be loaded

    def failed_to_load(self, link: LinkRef, rel: str | None) -> bool:
        """The link points at a page file that exists but could not be loaded."""
        if not self.unloadable:
            return False
        if link.kind == "wiki":
            wanted = " ".join(link.target.lower().split())
            return any(posixpath.basename(r)[:-3].lower() == wanted for r in self.unloadable)
        return rel in self.unloadable


def page_links(
    page: Page, key: str, lookup: Lookup, problems: list[Diagnostic]
) -> tuple[tuple[ResolvedLink | None, ...], dict[str, str]]:
    """The target of each link of `page`, and each other page it links to with the
    context of the first link there (in link order: that is the backlink shown)."""
    targets: list[ResolvedLink | None] = []
    firsts: dict[str, str] = {}
    for link in page.markup.links:
        target = _resolve_link(page, link, lookup, problems)
        targets.append(target)
        if (
            target is not None
            and target.slug != key
            and link.kind != "anchor"
            and target.slug not in firsts
        ):
            firsts[target.slug] = link.context
    return tuple(targets), firsts


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


def _name_table(pages: Iterable[Page]) -> dict[str, set[str]]:
    """Lower-cased slug, title and alias -> page keys (several means ambiguous)."""
    names: dict[str, set[str]] = defaultdict(set)
    for page in pages:
        key = page_key(page)
        if page.kind == "home":
            continue
        forms = [page.meta.title, *page.meta.aliases]
        forms.append(page.slug if page.kind in ("article", "page") else f"{page.section}")
        for form in forms:
            names[" ".join(form.lower().split())].add(key)
    return names


def _resolve_link(
    page: Page, link: LinkRef, lookup: Lookup, diagnostics: list[Diagnostic]
) -> ResolvedLink | None:
    names, by_rel, everything = lookup.names, lookup.by_rel, lookup.everything

    def fail(message: str, hint: str | None) -> None:
        diagnostics.append(error(page.source, link.line, link.col, message, hint))

    if link.kind == "anchor":
        target_key = page_key(page)
    elif link.kind == "wiki":
        written = link.target
        if written in everything and everything[written].kind == "article":
            target_key = written
        else:
            candidates = names.get(" ".join(written.lower().split()), set())
            if not candidates and lookup.failed_to_load(link, None):
                return None
            if not candidates:
                hint = did_you_mean(
                    written, [p.slug for p in everything.values() if p.kind == "article"]
                ) or did_you_mean(written, [p.meta.title for p in everything.values()])
                fail(
                    f"link target '{written}' does not exist",
                    hint or "link to an article by its file name (slug), title or alias",
                )
                return None
            if len(candidates) > 1:
                files = " and ".join(sorted(everything[c].source for c in candidates))
                fail(
                    f"link target '{written}' is ambiguous: it matches {files}",
                    "link by slug instead of title or alias",
                )
                return None
            target_key = next(iter(candidates))
    else:
        rel = resolve_relative_path(page.rel, link.target)
        if rel is not None and rel not in by_rel and lookup.failed_to_load(link, rel):
            return None
        if rel is None or rel not in by_rel:
            hint = "use a path relative to this file, e.g. ../section/slug.md"
            closest = difflib.get_close_matches(rel or link.target, list(by_rel), n=1)
            if closest:
                here = posixpath.dirname(page.rel) or "."
                hint = f"did you mean '{posixpath.relpath(closest[0], here)}'?"
            fail(f"linked file '{link.target}' does not exist", hint)
            return None
        target_key = by_rel[rel]
    target = everything[target_key]
    if target_key in lookup.hidden:
        fail(
            f"published page links to draft '{target.slug}' ({target.source})",
            "publish the draft (remove 'draft: true') or remove the link",
        )
        return None
    if lookup.show_drafts and target.meta.draft and not page.meta.draft:
        diagnostics.append(
            warning(
                page.source,
                link.line,
                link.col,
                f"links to draft '{target.slug}'; this link will fail when the site is published",
                "publish the draft or remove the link",
            )
        )
    if link.anchor is not None and link.anchor not in target.markup.anchors:
        headings = [h.id for h in target.markup.toc]
        where = "this page" if target_key == page_key(page) else f"'{target.slug}'"
        fail(
            f"anchor '#{link.anchor}' does not exist in {where}",
            did_you_mean(link.anchor, headings or target.markup.anchors)
            or (
                f"headings there: {', '.join(headings[:8])}"
                if headings
                else "the target page has no headings"
            ),
        )
        return None
    return ResolvedLink(target_key, link.anchor)


def citation_problems(
    page: Page, references: Mapping[str, Reference], references_path: str
) -> list[Diagnostic]:
    return [
        error(
            page.source,
            cite.line,
            cite.col,
            f"unknown citation key '@{cite.key}'",
            did_you_mean(cite.key, references)
            or f"add an entry '{cite.key}:' to {references_path}",
        )
        for cite in page.citations
        if cite.key not in references
    ]


def _citing_pages(
    pages: Mapping[str, Page],
    references: Mapping[str, Reference],
    diagnostics: list[Diagnostic],
    references_path: str,
    some_unloaded: bool = False,
    timelines: Mapping[str, Timeline] | None = None,
) -> dict[str, tuple[str, ...]]:
    """Reference key -> pages citing it (in their body, fields or timeline); warns about
    references nobody cites (unless a page could not be loaded: it may be the one citing
    them)."""
    citing: dict[str, list[str]] = defaultdict(list)
    for key, page in pages.items():
        for cite in page.citations:
            if cite.key in references and (not citing[cite.key] or citing[cite.key][-1] != key):
                citing[cite.key].append(key)
    for key, timeline in (timelines or {}).items():
        for event in timeline.events:
            for ref_key in event.cite:
                if ref_key in references:
                    citing[ref_key].append(key)
    for ref_key, reference in references.items():
        if ref_key not in citing and not some_unloaded:
            diagnostics.append(
                warning(
                    references_path,
                    reference.line,
                    1,
                    f"reference '{ref_key}' is never cited",
                    "cite it with [@" + ref_key + "] or remove the entry",
                )
            )
    return {k: tuple(sorted(set(v))) for k, v in sorted(citing.items())}


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
            did_you_mean(timeline.page, slugs) or "give the slug of an article, e.g. "
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


def _related(
    pages: Mapping[str, Page],
    outbound: Mapping[str, set[str]],
    backlinks: Mapping[str, list[Backlink]],
    pages_by_tag: Mapping[str, tuple[str, ...]],
    unloaded: frozenset[str],
    diagnostics: list[Diagnostic],
) -> dict[str, tuple[str, ...]]:
    """Explicit `related:` first, then pages sharing links and tags (bounded fan-out).
    `unloaded`: slugs of page files that could not be loaded (reported there already)."""
    article_keys = [k for k, p in pages.items() if p.kind == "article"]
    sort_title = {k: pages[k].meta.title.lower() for k in article_keys}  # once, not per sort
    inbound = {k: [b.source_slug for b in v] for k, v in backlinks.items()}
    # Tags as bit masks: shared tags are then `(a & b).bit_count()`, several times faster
    # than intersecting sets, for the ~70 candidates of every page.
    tag_bits = {
        tag: 1 << n
        for n, tag in enumerate(sorted({t for p in pages.values() for t in p.meta.tags}))
    }
    tags_of = {k: sum(tag_bits[t] for t in set(p.meta.tags)) for k, p in pages.items()}
    related: dict[str, tuple[str, ...]] = {}
    for key in article_keys:
        page = pages[key]
        chosen: list[str] = []
        for slug in page.meta.related:
            if slug in pages and pages[slug].kind == "article" and slug != key:
                if slug not in chosen:
                    chosen.append(slug)
                continue
            if slug in unloaded and slug not in pages:
                continue
            line, col = page.meta.key_positions.get("related", (1, 1))
            if slug == key:
                message = f"an article cannot list itself ('{slug}') under 'related'"
                hint = "remove it from the related list"
            else:
                message = f"related article '{slug}' does not exist"
                others = [k for k in article_keys if k != key]
                hint = did_you_mean(slug, others) or "use an article slug"
            diagnostics.append(error(page.source, line, col, message, hint))
        scores: Counter[str] = Counter()
        for other in outbound.get(key, ()):
            scores[other] += 3
            scores.update(inbound.get(other, ())[:FANOUT_CAP])
        for other in inbound.get(key, ())[:FANOUT_CAP]:
            scores[other] += 3
        excluded = {key, *chosen}
        need = RELATED_LIMIT - len(chosen)
        ranked = _ranked(
            scores,
            tags_of[key],
            set(page.meta.tags),
            need,
            excluded,
            tags_of,
            sort_title,
            pages_by_tag,
        )
        related[key] = tuple(chosen + _best(ranked, need, sort_title))
    return related


def _ranked(
    scores: Mapping[str, int],
    my_tags: int,  #: the page's tags as a bit mask
    my_tag_names: set[str],
    need: int,
    excluded: set[str],
    tags_of: Mapping[str, int],  #: page -> its tags as a bit mask
    sort_title: Mapping[str, str],
    pages_by_tag: Mapping[str, tuple[str, ...]],
) -> dict[str, int]:
    """Final scores of the candidates that can still make the list (articles, not
    `excluded`): link score plus one per shared tag; when links give few candidates,
    articles sharing tags fill in.

    Shared tags add at most `len(my_tag_names)`, so a candidate whose link score is lower
    than the `need`-th best by more than that cannot be chosen, and its tags are not compared
    (most of the ~70 candidates a page has at 10,000 pages).
    """
    if need <= 0:
        return {}
    my_tag_count = my_tags.bit_count()
    eligible = [(s, k) for k, s in scores.items() if k not in excluded and k in sort_title]
    floor = -1
    if len(eligible) >= need:
        floor = heapq.nlargest(need, (s for s, _ in eligible))[-1] - my_tag_count
    final = {k: s + (my_tags & tags_of[k]).bit_count() for s, k in eligible if s >= floor}
    if len(scores) < RELATED_LIMIT * 2:
        seen = set(scores)
        for tag in sorted(my_tag_names, key=lambda t: (len(pages_by_tag.get(t, ())), t)):
            for other in pages_by_tag.get(tag, ())[:FANOUT_CAP]:
                if other not in seen:
                    seen.add(other)
                    if other not in excluded and other in sort_title:
                        final[other] = (my_tags & tags_of[other]).bit_count()
    return final


def _best(scores: Mapping[str, int], limit: int, sort_title: Mapping[str, str]) -> list[str]:
    """The `limit` articles with the highest score, ties by title then slug.

    Scores are small sums, so candidates fall into few score groups; only the groups that
    reach the limit are sorted (sorting ~70 candidates per page dominated resolve on 10,000
    pages, to keep 5).
    """
    if limit <= 0:
        return []
    groups: dict[int, list[str]] = defaultdict(list)
    for candidate, score in scores.items():  # all eligible already (see _ranked)
        groups[score].append(candidate)
    best: list[str] = []
    for score in sorted(groups, reverse=True):
        best += sorted(groups[score], key=lambda k: (sort_title[k], k))
        if len(best) >= limit:
            break
    return best[:limit]


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
