"""Links against the site: where each `[[wikilink]]`, file link and `#anchor` points.

Input: a page, its key, and the `Lookup` tables of the whole site (names, file paths, every
page including hidden drafts, the page files that could not be loaded).
Output: each link's target (`ResolvedLink`, or None), the pages it links to with the context
of the first link there (the backlink shown), and an error per unknown or ambiguous target,
link to a hidden draft, or unknown anchor (at the link's file:line:col, with "did you mean");
a warning for a link to a shown draft from a published page.
"""

from __future__ import annotations

import posixpath
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from kbgen.diagnostics import Diagnostic, did_you_mean, error, warning
from kbgen.links import resolve_relative_path
from kbgen.model import LinkRef, Page, ResolvedLink
from kbgen.site_index import page_key

Fail = Callable[[str, str | None], None]  #: reports an error at the link being resolved


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


def wiki_name(written: str) -> str:
    """How `name_table` files a slug, title or alias, and how a [[wikilink]] looks it up."""
    return " ".join(written.lower().split())


def name_table(pages: Iterable[Page]) -> dict[str, set[str]]:
    """Lower-cased slug, title and alias -> page keys (several means ambiguous)."""
    names: dict[str, set[str]] = defaultdict(set)
    for page in pages:
        key = page_key(page)
        if page.kind == "home":
            continue
        forms = [page.meta.title, *page.meta.aliases]
        forms.append(page.slug if page.kind in ("article", "page") else f"{page.section}")
        for form in forms:
            names[wiki_name(form)].add(key)
    return names


def _resolve_link(
    page: Page, link: LinkRef, lookup: Lookup, diagnostics: list[Diagnostic]
) -> ResolvedLink | None:
    def fail(message: str, hint: str | None) -> None:
        diagnostics.append(error(page.source, link.line, link.col, message, hint))

    if link.kind == "anchor":
        target_key: str | None = page_key(page)
    elif link.kind == "wiki":
        target_key = _wiki_target(link, lookup, fail)
    else:
        target_key = _file_target(page, link, lookup, fail)
    if target_key is None:
        return None
    target = lookup.everything[target_key]
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
        fail(*_missing_anchor(link.anchor, target, target_key == page_key(page)))
        return None
    return ResolvedLink(target_key, link.anchor)


def _wiki_target(link: LinkRef, lookup: Lookup, fail: Fail) -> str | None:
    """The key of the page a `[[wikilink]]` names by slug, title or alias; None (reported
    unless the page file exists but could not be loaded) when it names none or several."""
    everything = lookup.everything
    written = link.target
    if written in everything and everything[written].kind == "article":
        return written
    candidates = lookup.names.get(wiki_name(written), set())
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
    return next(iter(candidates))


def _file_target(page: Page, link: LinkRef, lookup: Lookup, fail: Fail) -> str | None:
    """The key of the page a relative file link points at; None (reported unless the page
    file exists but could not be loaded) when no page has that file."""
    by_rel = lookup.by_rel
    rel = resolve_relative_path(page.rel, link.target)
    if rel is not None and rel not in by_rel and lookup.failed_to_load(link, rel):
        return None
    if rel is None or rel not in by_rel:
        import difflib  # here: only a broken link needs a hint

        hint = "use a path relative to this file, e.g. ../section/slug.md"
        closest = difflib.get_close_matches(rel or link.target, list(by_rel), n=1)
        if closest:
            here = posixpath.dirname(page.rel) or "."
            hint = f"did you mean '{posixpath.relpath(closest[0], here)}'?"
        fail(f"linked file '{link.target}' does not exist", hint)
        return None
    return by_rel[rel]


def _missing_anchor(anchor: str, target: Page, same_page: bool) -> tuple[str, str]:
    """Message and hint for an `#anchor` that the target page does not have."""
    headings = [h.id for h in target.markup.toc]
    where = "this page" if same_page else f"'{target.slug}'"
    return (
        f"anchor '#{anchor}' does not exist in {where}",
        did_you_mean(anchor, headings or target.markup.anchors)
        or (
            f"headings there: {', '.join(headings[:8])}"
            if headings
            else "the target page has no headings"
        ),
    )
