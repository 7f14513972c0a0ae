"""The resolve stage for the incremental builder: update the last knowledge graph after page edits.

Input: this build's pages, references, glossary and settings, and the previous build's
`TrackedResolution` (or None). Output: a `TrackedResolution`: the stage's `Resolution`
(index and diagnostics, exactly what `resolve.resolve_site` gives for these pages), plus
what the next build needs to update it (each page's facts, the settings) and `delta`, the
index entries that can differ from the previous one (None: any of them).

Whether an update suffices is the rebuild policy's call (kbgen/incremental/policy.py): each
difference from the previous build is named as a `Change` (an edited body, a changed title,
a new link target, a new page, other references, ...). `Effect.RESOLVE_CHANGED` (body
edits): only the edited pages' links are looked up again, with the stage's own `page_links`
and `citation_problems`, and only the backlinks showing their sentences are replaced.
`Effect.RELINK` (a title, tags, a summary, links or citations changed): the edited pages'
links, and those of pages naming a changed title or alias, are looked up again, the other
pages keep theirs, and the stage's `index_site` makes every site-wide table from them.
`Effect.RESOLVE_ALL`: the stage resolves the site from scratch. tests/test_resolving.py
checks each update against a full resolve.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from kbgen.config_types import Config
from kbgen.diagnostics import Diagnostic
from kbgen.incremental.policy import POLICY, Change, Effect
from kbgen.model import Backlink, GlossaryTerm, Page, Reference, ResolvedLink
from kbgen.resolve import (
    LinkResult,
    Resolution,
    all_diagnostics,
    collect_links,
    data_paths,
    index_site,
    link_result,
    resolve_site,
)
from kbgen.resolve_citations import citation_problems
from kbgen.resolve_links import Lookup, name_table, page_links, wiki_name
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
    #: the names its [[wikilinks]] look up (as `name_table` keys; a tuple: the state holds
    #: one per page, and tuples pickle faster than sets)
    names: tuple[str, ...]
    unconverted: bool  #: its body could not be converted


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
        context = _Context(references, glossary, *data_paths(config), timeline)
        updated = _update(previous, all_pages, context)
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


#: The changes an update can follow. The policy decides between RESOLVE_CHANGED, RELINK
#: and RESOLVE_ALL; a change outside this set is resolved from scratch whatever it says
#: (tests/test_policy.py checks the table asks no more than this).
UPDATABLE = frozenset({Change.PAGE_BODY, Change.DATE, Change.PAGE_SEEN, Change.PAGE_LINKS})
_UPDATES = Effect.RESOLVE_CHANGED | Effect.RELINK


def _needs_full(changes: Iterable[Change]) -> bool:
    for change in changes:
        effect = POLICY[change]
        if change not in UPDATABLE or Effect.RESOLVE_ALL in effect or not effect & _UPDATES:
            return True
    return False


def _relinks(changes: Iterable[Change]) -> bool:
    return any(Effect.RELINK in POLICY[change] for change in changes)


class _Context(NamedTuple):
    """What besides the pages an update reads (the same as the previous resolve's)."""

    references: Mapping[str, Reference]
    glossary: Sequence[GlossaryTerm]
    references_path: str
    glossary_path: str
    timeline: Timeline | None


def _setting_changes(old: tuple[object, ...], new: tuple[object, ...]) -> set[Change]:
    """The kinds of change between two resolves' settings (see `resolve_tracked`)."""
    kinds = (Change.CONFIG, Change.CONFIG, Change.CONFIG, Change.CONFIG, Change.REFERENCES,
             Change.GLOSSARY, Change.PAGE_DELETED, Change.TIMELINE)
    if len(old) != len(new):
        return {Change.CONFIG}
    return {kind for kind, before, now in zip(kinds, old, new, strict=True) if before != now}


def _facts(page: Page, listed: bool) -> PageFacts:
    markup = page.markup
    names = (wiki_name(link.target) for link in markup.links if link.kind == "wiki")
    return PageFacts(
        page.rel,
        page.digest,
        page.observable(),
        frozenset(cite.key for cite in page.citations),
        listed,
        tuple(dict.fromkeys(names)),
        bool(markup.problems),
    )


def _change_of(old: PageFacts, new: PageFacts) -> Change:
    """What an edit changed for other pages (`Page.observable` is what they can see)."""
    if new.observed == old.observed:
        # a body that stops (or starts) converting changes which site-wide checks run
        same = new.cited == old.cited and new.unconverted == old.unconverted
        return Change.PAGE_BODY if same else Change.PAGE_LINKS
    # kind, section, slug, front matter, anchors, heading ids: what links resolve against
    # besides names is the page's place, its draft flag and its anchors
    kind, section, slug, meta, anchors, headings = new.observed
    before = old.observed
    if (kind, section, slug, anchors, headings) != (*before[:3], *before[4:]) or (
        getattr(meta, "draft", None) != getattr(before[3], "draft", None)
    ):
        return Change.PAGE_TARGET
    return Change.PAGE_SEEN


class _Edits(NamedTuple):
    everything: dict[str, Page]  #: every page given, by key (drafts included)
    pages: dict[str, Page]  #: the listed ones
    facts: dict[str, PageFacts]
    changed: list[tuple[str, Page]]  #: listed pages whose bytes changed
    kinds: set[Change]  #: what the edits changed for other pages


def _page_edits(previous: TrackedResolution, all_pages: list[Page]) -> _Edits | Change:
    """How the pages differ from `previous`'s: the edited ones, or the first change the
    policy answers with a full resolve.

    Pages are compared by the digest of their file: given the same settings, equal bytes
    make an equal page, so `previous` need not hold its pages.
    """
    if len(all_pages) != len(previous.rels):
        return Change.PAGE_ADDED if len(all_pages) > len(previous.rels) else Change.PAGE_DELETED
    edits = _Edits({}, {}, dict(previous.facts), [], set())
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
        change = _change_of(old, new)
        if _needs_full([change]):
            return change
        edits.kinds.add(change)
        edits.facts[key] = new
        if old.listed:  # a hidden draft's links are not resolved
            edits.changed.append((key, page))
    return edits


def _update(
    previous: TrackedResolution, all_pages: list[Page], context: _Context
) -> TrackedResolution | None:
    """`previous` updated for the edited pages; None when the policy asks for a full
    resolve."""
    edits = _page_edits(previous, all_pages)
    if isinstance(edits, Change):
        return None
    if not _relinks(edits.kinds):
        updated = _update_bodies(previous, edits, context)
        if updated is not None:
            return updated
    return _relink(previous, edits, context)


def _update_bodies(
    previous: TrackedResolution, edits: _Edits, context: _Context
) -> TrackedResolution | None:
    """`previous` with the edited pages' links looked up again (RESOLVE_CHANGED); None if
    an edited page now links to other pages (then the site's tables move: RELINK)."""
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
        problems += citation_problems(page, context.references, context.references_path)
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


def _relink(
    previous: TrackedResolution, edits: _Edits, context: _Context
) -> TrackedResolution | None:
    """RELINK: the stage's `index_site` over the pages' links, where a page keeps the
    targets it had unless its links can resolve differently now: it was edited, it names a
    title or alias that now names other pages, or it had problems (their hints name
    titles). None when a slug is taken twice (the stage reports that from the files)."""
    old = previous.resolution
    if len(previous.facts) != len(previous.rels):
        return None
    names = name_table(edits.everything.values())
    renamed = {
        name
        for name in names.keys() | old.lookup.names.keys()
        if names.get(name) != old.lookup.names.get(name)
    }
    again = {key for key, _ in edits.changed} | old.local.keys()
    if renamed:
        again |= {
            key
            for key, fact in edits.facts.items()
            if fact.listed and not renamed.isdisjoint(fact.names)
        }
    lookup = Lookup(
        names,
        old.lookup.by_rel,
        edits.everything,
        old.lookup.hidden,
        old.lookup.show_drafts,
        old.lookup.unloadable,
    )
    contexts = {
        (entry.source_slug, target): entry.context
        for target, entries in old.index.backlinks.items()
        for entry in entries
    }

    def result(key: str, page: Page) -> LinkResult:
        if key in again:
            return link_result(page, key, lookup, context.references, context.references_path)
        targets = old.index.links[key]
        firsts = _kept_firsts(key, targets, contexts)
        return LinkResult(targets, firsts, (), edits.facts[key].cited)

    unconverted = any(facts.unconverted for facts in edits.facts.values() if facts.listed)
    links = collect_links(((k, result(k, p)) for k, p in edits.pages.items()), unconverted)
    resolution = index_site(
        edits.pages, lookup, links, context.references, context.glossary, [],
        context.references_path, context.glossary_path, context.timeline,
    )
    edited = frozenset(key for key, _ in edits.changed)
    return dataclasses.replace(
        previous,
        resolution=resolution,
        delta=_index_delta(old.index, resolution.index, edited),
        facts=edits.facts,
        resolved=len(again & edits.pages.keys()),
    )


def _kept_firsts(
    key: str, targets: tuple[ResolvedLink | None, ...], contexts: Mapping[tuple[str, str], str]
) -> dict[str, str]:
    """`page_links`'s second answer for a page whose targets are kept: each other page it
    links to, in link order, with the sentence its backlink shows."""
    firsts: dict[str, str] = {}
    for target in targets:
        if target is not None and target.slug != key and target.slug not in firsts:
            firsts[target.slug] = contexts[(key, target.slug)]
    return firsts


def _index_delta(
    old: SiteIndex, new: SiteIndex, edited: frozenset[str]
) -> dict[str, frozenset[str]] | None:
    """The entries of each of the index's mappings that differ (`edited`: the pages whose
    files changed; the others are equal pages); None unless every mapping has the same keys
    in the same order and every other field is equal (what the planner's delta promises)."""
    delta = {"pages": edited}
    for spec in dataclasses.fields(SiteIndex):
        if spec.name == "pages":
            continue
        before, now = getattr(old, spec.name), getattr(new, spec.name)
        if not isinstance(now, Mapping):
            if before != now:
                return None
            continue
        if list(before) != list(now):
            return None
        delta[spec.name] = frozenset(key for key, value in now.items() if before[key] != value)
    return delta


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
