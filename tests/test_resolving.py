"""The incremental resolve (kbgen/incremental/resolving.py): updating the previous knowledge
graph after body edits (RESOLVE_CHANGED) or after edits of what other pages show (RELINK) gives
the same answer as the stage resolving from scratch, in the same order, and any edit the
rebuild policy answers with a full resolve is resolved from scratch."""

from __future__ import annotations

import pytest
from test_resolve import graph_files

from kbgen.incremental import Builder
from kbgen.incremental.resolving import portable, resolve_tracked
from kbgen.pipeline import BuildOptions


def _resolved(make_site) -> tuple[list, object, object]:  # type: ignore[no-untyped-def]
    from kbgen.config import load_config

    root = make_site(graph_files())
    builder = Builder(root / "config.yaml", BuildOptions(today=__import__("conftest").TODAY))
    assert builder.build().ok and builder.index is not None
    config, _ = load_config(root / "config.yaml")
    index = builder.index
    pages = list(index.pages.values())
    first = resolve_tracked(pages, index.references, index.glossary, config, False)
    return pages, config, first


def _edited(pages: list, slug: str, **changes: object) -> list:  # type: ignore[type-arg]
    """`pages` with one page's markup (or page fields) changed, as a new load would give."""
    from dataclasses import replace

    out = []
    for page in pages:
        if page.slug == slug:
            markup_fields = ("links", "citations", "anchors")
            markup_changes = {k: v for k, v in changes.items() if k in markup_fields}
            page_changes = {k: v for k, v in changes.items() if k not in markup_changes}
            markup = replace(page.markup, html=page.markup.html + "<p>edited</p>", **markup_changes)
            page = replace(page, markup=markup, digest="edited", **page_changes)
        out.append(page)
    return out


def _same_as_full(pages: list, config: object, incremental: object) -> None:  # type: ignore[type-arg]
    from kbgen.resolve import resolve_site

    index = incremental.index  # type: ignore[attr-defined]
    full = resolve_site(pages, index.references, index.glossary, config, False)  # type: ignore[arg-type]
    assert incremental.index == full.index  # type: ignore[attr-defined]
    assert incremental.resolution.lookup == full.lookup  # type: ignore[attr-defined]
    key = lambda d: (d.path, d.line or 0, d.col or 0, d.message)  # noqa: E731
    assert sorted(incremental.diagnostics, key=key) == sorted(full.diagnostics, key=key)  # type: ignore[attr-defined]


def test_body_edit_updates_the_previous_resolution(make_site) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    pages, config, first = _resolved(make_site)
    beta = next(p for p in pages if p.slug == "beta")
    # The sentence around beta's first link changes, and a new, broken link appears.
    reworded = [
        replace(link, context="Beta now cites part A of alpha.") if link.target == "alpha" else link
        for link in beta.markup.links
    ]
    broken = replace(beta.markup.links[0], target="nowhere", line=9, col=3, context="x")
    links = (*reworded, broken)
    edited = _edited(pages, "beta", links=links)
    index = first.index
    second = resolve_tracked(
        edited, index.references, index.glossary, config, False, previous=first
    )
    assert second.delta == {
        "pages": frozenset({"beta"}),
        "links": frozenset({"beta"}),
        "backlinks": frozenset({"alpha"}),  # gamma's backlink from beta kept its sentence
    }
    assert ("beta", "Beta now cites part A of alpha.") in [
        (b.source_slug, b.context) for b in second.index.backlinks["alpha"]
    ]
    assert [d.message for d in second.diagnostics if d.is_error] == [
        "link target 'nowhere' does not exist"
    ]
    _same_as_full(edited, config, second)
    # The saved form (no pages, as the build state keeps it) updates to the same result.
    saved = __import__("pickle").loads(__import__("pickle").dumps(portable(first)))
    from_saved = resolve_tracked(edited, index.references, index.glossary, config, False,
                                 previous=saved)
    assert from_saved.index == second.index and from_saved.delta == second.delta
    assert from_saved.diagnostics == second.diagnostics
    # Unchanged pages: nothing to do, and nothing reported as changed.
    again = resolve_tracked(
        edited, index.references, index.glossary, config, False, previous=second
    )
    assert again.delta is not None and not any(again.delta.values())
    assert again.index == second.index and again.resolved == 0


def _in_order(tracked: object) -> list[object]:  # type: ignore[type-arg]
    """Every mapping of the index as a list of items: equal only in the same order (the
    planner's key fingerprints and related pages' bounded fan-out both see the order)."""
    import dataclasses

    index = tracked.index  # type: ignore[attr-defined]
    return [
        (spec.name, list(getattr(index, spec.name).items()))
        for spec in dataclasses.fields(index)
        if isinstance(getattr(index, spec.name), dict)
    ]


def _relinked(make_site, change: str) -> tuple[list, object, object, object]:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from kbgen.model import CiteRef

    pages, config, first = _resolved(make_site)
    beta = next(p for p in pages if p.slug == "beta")
    gamma = next(p for p in pages if p.slug == "gamma")
    if change == "new target":
        new_link = replace(beta.markup.links[0], target="delta", anchor=None)
        edited = _edited(pages, "beta", links=(*beta.markup.links, new_link))
    elif change == "dropped target":  # beta no longer links to gamma: gamma loses a backlink
        edited = _edited(pages, "beta", links=beta.markup.links[:1])
    elif change == "title":  # backlinks, tags and sections sort by title
        edited = _edited(pages, "beta", meta=replace(beta.meta, title="Zeta beta"))
    elif change == "title linked by name":  # alpha's [[Gamma page]] now names nothing
        edited = _edited(pages, "gamma", meta=replace(gamma.meta, title="Gamma renamed"))
    elif change == "alias taking a name":  # ... and now names two pages
        edited = _edited(pages, "beta", meta=replace(beta.meta, aliases=("Gamma page",)))
    elif change == "tags":
        edited = _edited(pages, "gamma", meta=replace(gamma.meta, tags=("shared", "a")))
    else:  # citation
        cite = CiteRef("nobody-2020", None, 5, 1)
        edited = _edited(pages, "beta", citations=(*beta.markup.citations, cite))
    index = first.index
    second = resolve_tracked(
        edited, index.references, index.glossary, config, False, previous=first
    )
    return edited, config, first, second


@pytest.mark.parametrize(
    "change",
    ["new target", "dropped target", "title", "title linked by name", "alias taking a name",
     "tags", "citation"],
)
def test_edits_other_pages_can_see_relink_to_the_full_answer(make_site, change: str) -> None:  # type: ignore[no-untyped-def]
    from kbgen.resolve import resolve_site

    edited, config, first, second = _relinked(make_site, change)
    _same_as_full(edited, config, second)
    index = second.index
    full = resolve_site(edited, index.references, index.glossary, config, False)
    assert _in_order(second) == _in_order(full)
    # Only the pages whose links can resolve differently were looked up again.
    assert second.resolved == (2 if change in ("title linked by name", "alias taking a name")
                               else 1)
    # The delta names every entry that differs from the last build's index (None: a
    # mapping's keys changed, so the planner checks everything).
    assert second.delta is not None or change not in ("title", "tags", "citation")
    for name, items in _in_order(second) if second.delta is not None else ():
        before = getattr(first.index, name)
        moved = {key for key, value in items if before.get(key) != value}
        assert moved <= second.delta.get(name, frozenset()), name
    if change == "title linked by name":
        assert [d.message for d in second.diagnostics if d.is_error] == [
            "link target 'Gamma page' does not exist"
        ]
    if change == "alias taking a name":
        errors = [d.message for d in second.diagnostics if d.is_error]
        assert len(errors) == 1 and "is ambiguous" in errors[0]
    # The saved form (no pages) relinks to the same answer.
    saved = __import__("pickle").loads(__import__("pickle").dumps(portable(first)))
    again = resolve_tracked(edited, index.references, index.glossary, config, False,
                            previous=saved)
    assert _in_order(again)[1:] == _in_order(second)[1:]  # (pages: compared by equality)
    assert again.index == second.index and again.diagnostics == second.diagnostics


@pytest.mark.parametrize("change", ["new page", "anchor", "draft"])
def test_edits_links_resolve_against_resolve_from_scratch(make_site, change: str) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    pages, config, first = _resolved(make_site)
    beta = next(p for p in pages if p.slug == "beta")
    if change == "anchor":  # beta's [[alpha#part-a]] now points at nothing
        edited = _edited(pages, "alpha", anchors=frozenset())
    elif change == "draft":
        edited = _edited(pages, "delta", meta=replace(
            next(p for p in pages if p.slug == "delta").meta, draft=True))
    else:
        edited = [*pages, replace(beta, rel="mechanism/epsilon.md", slug="epsilon")]
    index = first.index
    second = resolve_tracked(
        edited, index.references, index.glossary, config, False, previous=first
    )
    assert second.delta is None
    _same_as_full(edited, config, second)
