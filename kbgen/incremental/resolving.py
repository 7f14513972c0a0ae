"""The resolve stage for the incremental builder: update the last knowledge graph after body edits.

Input: this build's pages, references, glossary and settings, and the previous build's
`TrackedResolution` (or None). Output: a `TrackedResolution`: the stage's `Resolution`
(index and diagnostics, exactly what `resolve.resolve_site` gives for these pages), plus
what the next build needs to update it (each page's facts, the settings) and `delta`, the
index entries that can differ from the previous one (None: resolved afresh).

Whether an update suffices is the rebuild policy's call (kbgen/incremental/policy.py): each
difference from the previous build is named as a `Change` (an edited body, a changed title,
a new link target, a new page, other references, ...), and when any of them calls for
`Effect.RESOLVE_ALL` the site is resolved from scratch by the stage itself. Otherwise only
the edited pages' links are looked up again, with the stage's own `page_links` and
`citation_problems`, and only the backlinks showing their sentences are replaced.
tests/test_resolving.py checks the update against a full resolve.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from kbgen.config_types import Config
from kbgen.diagnostics import Diagnostic
from kbgen.incremental.policy import POLICY, Change, Effect
from kbgen.model import Backlink, GlossaryTerm, Page, Reference
from kbgen.resolve import Resolution, all_diagnostics, data_paths, resolve_site
from kbgen.resolve_citations import citation_problems
from kbgen.resolve_links import page_links
from kbgen.site_index import SiteIndex, page_key

if TYPE_CHECKING:  # the timeline's module is loaded only by a build that has one
    from kbgen.timeline import Timeline


class PageFacts(NamedTuple):
    """What a later resolve needs to know about a page of this one: its file, its bytes,
    and what other pages and site-wide checks can see of it."""

    rel: str
    digest: str
    observed: tuple[object, ...]  #: `Page.observable()`
    cited: frozenset[str]  #: the citation keys it uses
    listed: bool  #: in `index.pages` (not a hidden draft)


@dataclass(frozen=True, slots=True)
class TrackedResolution:
    """One resolve's result plus what the next resolve needs to update it cheaply.

    `delta` says which entries of the index's mappings may differ from the previous
    resolution this one was derived from (mapping name -> keys); None when everything was
    resolved afresh. The dependency planner uses it to skip fingerprints that cannot have
    changed, so an edited body costs work proportional to the edit, not to the site.
    """

    resolution: Resolution
    delta: Mapping[str, frozenset[str]] | None
    settings: tuple[object, ...]  #: everything besides the pages that the result depends on
    facts: Mapping[str, PageFacts]  #: what the next resolve compares, for each page given
    rels: frozenset[tuple[str, str]]  #: (rel, key) of every page given, duplicates included
    resolved: int  #: pages whose links this resolve looked up (all of them, or the changed)

    @property
    def index(self) -> SiteIndex:
        return self.resolution.index

    @property
    def diagnostics(self) -> list[Diagnostic]:
        return self.resolution.diagnostics


def resolve_tracked(
    pages: Iterable[Page],
    references: Mapping[str, Reference],
    glossary: Sequence[GlossaryTerm],
    config: Config,
    show_drafts: bool,
    previous: TrackedResolution | None = None,
    unloadable: Iterable[str] = (),
    timeline: Timeline | None = None,
) -> TrackedResolution:
    """Resolve the site: from `previous` when the policy allows, else from scratch.

    The update gives exactly the result of a full resolve (tests compare them). `previous`
    may be a `portable` copy, without pages.
    """
    all_pages = sorted(pages, key=lambda p: p.rel)
    unloaded = tuple(sorted(unloadable))
    settings = (
        config.digest,
        show_drafts,
        *data_paths(config),
        tuple(references.items()),
        tuple(glossary),
        unloaded,
        timeline,
    )
    if previous is not None and not _needs_full(_setting_changes(previous.settings, settings)):
        updated = _update(previous, all_pages, references, data_paths(config)[0])
        if updated is not None:
            return updated
    resolution = resolve_site(
        all_pages, references, glossary, config, show_drafts, unloadable=unloaded,
        timeline=timeline,
    )
    everything = resolution.lookup.everything
    listed = resolution.index.pages
    return TrackedResolution(
        resolution=resolution,
        delta=None,
        settings=settings,
        facts={key: _facts(page, key in listed) for key, page in everything.items()},
        rels=frozenset((p.rel, page_key(p)) for p in all_pages),
        resolved=len(listed),
    )


def portable(tracked: TrackedResolution) -> TrackedResolution:
    """`tracked` without its pages (the next build loads them anyway; their facts
    suffice to update it): what the build state keeps for the next process."""
    resolution = tracked.resolution
    index = dataclasses.replace(resolution.index, pages={})
    lookup = dataclasses.replace(resolution.lookup, everything={})
    bare = dataclasses.replace(resolution, index=index, lookup=lookup)
    return dataclasses.replace(tracked, resolution=bare, delta=None, resolved=0)


#: The changes an update can follow. The policy decides between RESOLVE_CHANGED and
#: RESOLVE_ALL; a change outside this set is resolved from scratch whatever it says
#: (tests/test_policy.py checks the table asks no more than this).
UPDATABLE = frozenset({Change.PAGE_BODY, Change.DATE})


def _needs_full(changes: Iterable[Change]) -> bool:
    return any(
        change not in UPDATABLE or Effect.RESOLVE_CHANGED not in POLICY[change]
        for change in changes
    )


def _setting_changes(old: tuple[object, ...], new: tuple[object, ...]) -> set[Change]:
    """The kinds of change between two resolves' settings (see `resolve_tracked`)."""
    kinds = (Change.CONFIG, Change.CONFIG, Change.CONFIG, Change.CONFIG, Change.REFERENCES,
             Change.GLOSSARY, Change.PAGE_DELETED, Change.TIMELINE)
    if len(old) != len(new):
        return {Change.CONFIG}
    return {kind for kind, before, now in zip(kinds, old, new, strict=True) if before != now}


def _facts(page: Page, listed: bool) -> PageFacts:
    return PageFacts(
        page.rel,
        page.digest,
        page.observable(),
        frozenset(cite.key for cite in page.citations),
        listed,
    )


class _Edits(NamedTuple):
    everything: dict[str, Page]  #: every page given, by key (drafts included)
    pages: dict[str, Page]  #: the listed ones
    facts: dict[str, PageFacts]
    changed: list[tuple[str, Page]]  #: listed pages whose bytes changed


def _page_edits(previous: TrackedResolution, all_pages: list[Page]) -> _Edits | Change:
    """How the pages differ from `previous`'s: the edited ones, or the first change the
    policy answers with a full resolve.

    Pages are compared by the digest of their file: given the same settings, equal bytes
    make an equal page, so `previous` need not hold its pages.
    """
    if len(all_pages) != len(previous.rels):
        return Change.PAGE_ADDED if len(all_pages) > len(previous.rels) else Change.PAGE_DELETED
    edits = _Edits({}, {}, dict(previous.facts), [])
    for page in all_pages:
        key = page_key(page)
        if (page.rel, key) not in previous.rels:
            return Change.PAGE_ADDED
        old = edits.facts.get(key)
        if old is None or old.rel != page.rel:
            # A page that lost to another file (duplicate slug or case clash): nothing reads
            # it, and its only diagnostic names the files, not the content.
            continue
        edits.everything[key] = page
        if old.listed:
            edits.pages[key] = page
        if old.digest == page.digest:
            continue
        new = _facts(page, old.listed)
        change = (
            Change.PAGE_SEEN if new.observed != old.observed
            else Change.PAGE_LINKS if new.cited != old.cited
            else Change.PAGE_BODY
        )
        if _needs_full([change]):
            return change
        edits.facts[key] = new
        if old.listed:  # a hidden draft's links are not resolved
            edits.changed.append((key, page))
    return edits


def _update(
    previous: TrackedResolution,
    all_pages: list[Page],
    references: Mapping[str, Reference],
    references_path: str,
) -> TrackedResolution | None:
    """`previous` updated for pages whose bodies changed; None when the policy asks for a
    full resolve."""
    edits = _page_edits(previous, all_pages)
    if isinstance(edits, Change):
        return None
    old = previous.resolution
    old_index = old.index
    lookup = dataclasses.replace(old.lookup, everything=edits.everything)
    links = dict(old_index.links)
    backlinks = dict(old_index.backlinks)
    local = dict(old.local)
    touched_backlinks: set[str] = set()
    for key, page in edits.changed:
        problems: list[Diagnostic] = []
        targets, firsts = page_links(page, key, lookup, problems)
        if frozenset(firsts) != old_index.outbound.get(key, frozenset()):
            return None  # Change.PAGE_LINKS: other pages' backlinks and related lists move
        problems += citation_problems(page, references, references_path)
        links[key] = targets
        if problems:
            local[key] = tuple(problems)
        else:
            local.pop(key, None)
        touched_backlinks |= _replace_backlinks(backlinks, key, firsts)
    touched = frozenset(key for key, _ in edits.changed)
    index = dataclasses.replace(old_index, pages=edits.pages, links=links, backlinks=backlinks)
    resolution = dataclasses.replace(
        old, index=index, diagnostics=all_diagnostics(old.shared, local), lookup=lookup,
        local=local,
    )
    return dataclasses.replace(
        previous,
        resolution=resolution,
        delta={"pages": touched, "links": touched, "backlinks": frozenset(touched_backlinks)},
        facts=edits.facts,
        resolved=len(touched),
    )


def _replace_backlinks(
    backlinks: dict[str, tuple[Backlink, ...]], key: str, firsts: Mapping[str, str]
) -> set[str]:
    """Show page `key`'s new sentences in the backlinks of the pages it links to; returns
    the pages whose backlinks changed."""
    touched: set[str] = set()
    for target_key, context in firsts.items():
        entries = backlinks[target_key]
        replaced = tuple(
            Backlink(key, context) if entry.source_slug == key else entry for entry in entries
        )
        if replaced != entries:
            backlinks[target_key] = replaced
            touched.add(target_key)
    return touched


__all__ = ["UPDATABLE", "PageFacts", "TrackedResolution", "portable", "resolve_tracked"]
