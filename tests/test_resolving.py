"""The incremental resolve (kbgen/incremental/resolving.py): updating the previous knowledge
graph after body edits gives the same answer as the stage resolving from scratch, and any edit
the rebuild policy answers with a full resolve is resolved from scratch."""

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
            markup_changes = {k: v for k, v in changes.items() if k in ("links", "citations")}
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


@pytest.mark.parametrize("change", ["new target", "title", "citation", "new page"])
def test_edits_other_pages_can_see_resolve_from_scratch(make_site, change: str) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    pages, config, first = _resolved(make_site)
    beta = next(p for p in pages if p.slug == "beta")
    if change == "new target":
        new_link = replace(beta.markup.links[0], target="delta", anchor=None)
        edited = _edited(pages, "beta", links=(*beta.markup.links, new_link))
    elif change == "title":
        edited = _edited(pages, "beta", meta=replace(beta.meta, title="Beta renamed"))
    elif change == "citation":
        cite = __import__("kbgen.model", fromlist=["CiteRef"]).CiteRef("nobody-2020", None, 5, 1)
        edited = _edited(pages, "beta", citations=(*beta.markup.citations, cite))
    else:
        edited = [*pages, replace(beta, rel="mechanism/epsilon.md", slug="epsilon")]
    index = first.index
    second = resolve_tracked(
        edited, index.references, index.glossary, config, False, previous=first
    )
    assert second.delta is None
    _same_as_full(edited, config, second)
