"""The pictures a page draws from the site index: an article's knowledge map, its timeline,
a section's charts, and the site map (large sites: one node per section).

Input: the `SiteView` a render job runs with (routes.py), so everything a picture reads from the
index goes through the view and is recorded by the incremental builder like any other read.
Output: the picture values the templates draw (knowledge_map.py's maps, charts.py's charts).
render.py calls these from the page contexts; they are kept apart because they are the part
of rendering that grows with the site's features, and the only one that imports charts.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kbgen.config_types import SectionSpec
from kbgen.knowledge_map import (
    SITE_MAP_PAGE_LIMIT,
    KnowledgeMap,
    MapNode,
    SectionSummary,
    SiteGroup,
    SiteMap,
    build_map,
    build_section_map,
    build_site_map,
    neighbourhood,
)
from kbgen.model import Page
from kbgen.routes import SiteView
from kbgen.site_index import HOME_KEY

if TYPE_CHECKING:  # charts.py is imported by the pages that draw one (few: most edits skip it)
    from kbgen.charts import Chart


class DrawnOnUse:
    """A picture drawn when the template first reads one of its attributes, as
    `knowledge_map.svg` does: a theme that never shows it costs nothing, and its pages
    record no reads for it, so they are not rendered again when only what it would show
    changed. It is always true, as the picture it stands for is."""

    __slots__ = ("_draw", "_picture")

    def __init__(self, draw: Callable[[], object]) -> None:
        self._draw: Callable[[], object] | None = draw
        self._picture: object = None

    def __getattr__(self, name: str) -> object:
        # called only for names that are not slots: the picture's attributes
        if self._draw is not None:
            self._picture, self._draw = self._draw(), None
        return getattr(self._picture, name)

    def __bool__(self) -> bool:
        return True


def knowledge_map(view: SiteView, key: str, file: str) -> KnowledgeMap:
    """The page's neighbourhood drawn as a map (knowledge_map.py); what it reads from the
    index (links, backlinks, related, the neighbours' titles and sections) is recorded, so
    it is redrawn only when one of those changes."""
    index = view.index
    page = index.pages[key]
    around = neighbourhood(
        key,
        sorted(k for k in index.outbound.get(key, frozenset()) if k in index.pages),
        [b.source_slug for b in index.backlinks.get(key, ())],
        [k for k in index.related.get(key, ()) if k in index.pages],
    )
    positions = {spec.id: n for n, spec in enumerate(view.config.sections)}
    nodes = []
    for other, relations in around.items():
        neighbour = index.pages[other]
        nodes.append(
            MapNode(
                other,
                neighbour.meta.title,
                view.router.href(file, view.file_of(other)),
                positions.get(str(neighbour.section), len(positions)),
                relations,
            )
        )
    return build_map(page.meta.title, nodes, [spec.title for spec in view.config.sections])


def timeline_charts(
    view: SiteView, key: str, page: Page, references: list[dict[str, Any]]
) -> list[Chart]:
    """The timeline this article shows (content/timeline.yaml), if any. Its sources not
    cited in the body are added to `references` (numbered after the body's), so every row of
    its table links to an entry of the page's own reference list."""
    timeline = view.index.timelines.get(key)
    if timeline is None:
        return []  # every other article: it read only that it has none
    from kbgen.charts import timeline_chart

    numbers = {ref_key: n for n, ref_key in enumerate(page.cited_keys, start=1)}
    for event in timeline.events:
        for ref_key in event.cite:
            if ref_key not in numbers and ref_key in view.index.references:
                numbers[ref_key] = max(numbers.values(), default=0) + 1
                references.append(
                    view.reference_view(view.index.references[ref_key], numbers[ref_key])
                )
    return [timeline_chart(timeline.events, numbers)]


def charts_of_section(view: SiteView, spec: SectionSpec, file: str) -> list[Chart]:
    """The charts its schema's number fields allow (charts.py), from its articles' values."""
    numeric = frozenset(f.name for f in spec.fields if f.type == "number")
    if not numeric:
        return []  # most sections: nothing read, nothing drawn
    from kbgen.charts import ChartRow, section_charts

    rows = []
    for key in view.index.articles_by_section.get(spec.id, ()):
        fields = view.index.pages[key].meta.fields
        effect = fields.get("trial_effect", "")
        rows.append(
            ChartRow(
                view.index.pages[key].meta.title,
                view.router.href(file, view.file_of(key)),
                {n: float(v) for n in sorted(numeric) if isinstance(v := fields.get(n), float)},
                effect if isinstance(effect, str) else "",
            )
        )
    return section_charts(rows, numeric)


def site_map(view: SiteView, file: str) -> SiteMap:
    """Every page by section, each section's own page first, then the pages outside every
    section; and every link between them (knowledge_map.build_site_map). Above
    SITE_MAP_PAGE_LIMIT pages, the sections instead (`_section_map`)."""
    if len(view.index.pages) > SITE_MAP_PAGE_LIMIT:
        return _section_map(view, file)
    index = view.index
    sections = view.config.sections

    def node(key: str, shape: int) -> MapNode:
        return MapNode(
            key,
            index.pages[key].meta.title,
            view.router.href(file, view.file_of(key)),
            shape,
            frozenset(),
        )

    groups = []
    for shape, spec in enumerate(sections):
        own = _generated_node(view, file, f"_section:{spec.id}", spec.title, shape)
        articles = tuple(node(k, shape) for k in index.articles_by_section.get(spec.id, ()))
        groups.append(SiteGroup(spec.title, shape, (own, *articles), headed=True))
    home = _generated_node(view, file, HOME_KEY, view.config.title, len(sections))
    standalone = sorted(
        (k for k, page in index.pages.items() if page.kind == "page"),
        key=lambda k: (index.pages[k].meta.title.lower(), k),
    )
    groups.append(
        SiteGroup(
            "Other pages",
            len(sections),
            (home, *(node(k, len(sections)) for k in standalone)),
            headed=False,
        )
    )
    links = [
        (key, target) for key in sorted(index.outbound) for target in sorted(index.outbound[key])
    ]
    return build_site_map(view.config.title, groups, links)


def _generated_node(view: SiteView, file: str, key: str, title: str, shape: int) -> MapNode:
    """The node of a section or home page, which the site has even without a source file."""
    index = view.index
    if key in index.pages:
        title = index.pages[key].meta.title
        target = view.file_of(key)
    else:
        target = "index.html" if key == HOME_KEY else view.section_file(key.split(":", 1)[1])
    return MapNode(key, title, view.router.href(file, target), shape, frozenset())


def _section_map(view: SiteView, file: str) -> SiteMap:
    """The site map of a large site: a node per section (and one for the other pages), an
    arc per pair of linked sections. It reads no page's title, so a title edit leaves it
    as it is; it changes when pages are added, removed or moved, or their links change."""
    index = view.index
    sections = view.config.sections
    other = len(sections)  # the group (and shape) of home and the standalone pages
    keys = [f"_section:{spec.id}" for spec in sections] + [HOME_KEY]
    section_of: dict[str, int] = {}
    sizes: list[int] = []  # pages per group, its own page included
    for number, spec in enumerate(sections):
        articles = index.articles_by_section.get(spec.id, ())
        section_of.update(dict.fromkeys((keys[number], *articles), number))
        sizes.append(len(articles) + 1)
    # the other pages: home and what is left of the site (the pages of no section)
    sizes.append(1 + sum(1 for key in index.pages if key not in section_of and key != HOME_KEY))
    counts: dict[tuple[int, int], int] = {}
    for key in sorted(index.outbound):
        start = section_of.get(key, other)
        for target in index.outbound[key]:
            end = section_of.get(target, other)
            if end != start:
                counts[start, end] = counts.get((start, end), 0) + 1
    titles = [spec.title for spec in sections] + ["Other pages"]
    summaries = [
        SectionSummary(
            dataclasses.replace(  # the node names its group and size, whatever its page says
                _generated_node(view, file, keys[n], titles[n], n),
                title=f"{titles[n]} ({sizes[n]:,} pages)",
            ),
            titles[n],
            sizes[n],
            tuple((titles[m], counts[n, m]) for m in range(len(titles)) if (n, m) in counts),
        )
        for n in range(len(titles))
    ]
    links = [(keys[a], keys[b]) for a, b in sorted(counts)]
    return build_section_map(view.config.title, summaries, links)
