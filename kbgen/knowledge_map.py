"""The knowledge map: a page's neighbourhood in the link graph, laid out and drawn as SVG.

Input: the current page and its neighbours (`MapNode`: title, URL, section number, how it is
related to the current page), already chosen and given URLs by render.py. Output: inline SVG
text (every neighbour a real, focusable `<a>` named by its page title) and the legend and
text-alternative data the template shows beside it.

The layout is a pure function of the sorted neighbours: no randomness, no floating-point
iteration, coordinates rounded to whole units, so the same neighbourhood gives the same bytes
in every build and with any `--jobs`. It is a fan: the current page at the left, its
neighbours on a half-ellipse to its right, one row each (so labels never collide and the
drawing stays narrow enough to read on a phone), in section order so a section's pages sit
together. For the few dozen nodes
of one neighbourhood this is more legible than a force-directed layout and needs no
numerical library (docs/architecture.md, "Dependencies and why").

The whole-site map (`build_site_map`, the site-map page) draws every page with the same
nodes and shapes, grouped by section down one column, and every link between two pages as
an arc to the left of the column (an arc diagram): a long arc joins distant sections, a
cluster of short ones a section that links within itself. It is as deterministic as the
fan: rows in section order, arcs sorted, whole-unit coordinates. Above
`SITE_MAP_PAGE_LIMIT` pages a drawing of every page is too long to read (a phone screen shows
~25 of its rows) and too heavy to send (7.6 MB of SVG at 10,000 pages), so the map draws one node
per section instead (`build_section_map`: its title and page count, an arc for each pair of
sections linked to each other) and the list names the sections with their page counts and the
sections they link to, each linking to the section page that lists its articles.
"""

from __future__ import annotations

import dataclasses
import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

#: the relations a neighbour can have to the current page (a node may have several)
LINKS_TO = "links-to"  #: the current page links to it
LINKED_FROM = "linked-from"  #: it links to the current page
RELATED = "related"  #: listed in the current page's `related:`
RELATION_LABELS = {LINKS_TO: "this page links to it", LINKED_FROM: "links here", RELATED: "related"}

MAX_NODES = 40  #: more neighbours than this are listed, not drawn (a hub page stays legible)
WIDTH = 380  #: viewBox width: narrow enough that a 360 px phone shows the labels at ~12 px
CENTRE_X = 28  #: the current page sits at the left, its neighbours fan out to its right
ARC_X = 90  #: horizontal radius of the fan
ROW = 24  #: vertical distance between neighbours with one-line labels
LINE = 15  #: the extra height of a two-line label
TOP = 34  #: room above the fan for the current page's title
MARGIN = 16
NODE_R = 8
CENTRE_R = 13
LABEL_CHARS = 30  #: longer titles wrap onto a second line
#: one shape per section (by its position in config.yaml), so sections differ without colour;
#: the last one is for pages outside every section (home, standalone pages)
SHAPES = (
    "M0-8a8 8 0 1 1 0 16a8 8 0 1 1 0-16z",  # circle
    "M-7-7h14v14h-14z",  # square
    "M0-9l9 9l-9 9l-9-9z",  # diamond
    "M0-9l8.5 15h-17z",  # triangle
    "M0 9l8.5-15h-17z",  # triangle pointing down
    "M-4.5-8h9l4.5 8l-4.5 8h-9l-4.5-8z",  # hexagon
    "M0-9l8.6 6.2l-3.3 10.1h-10.6l-3.3-10.1z",  # pentagon
    "M-3-8h6v5h5v6h-5v5h-6v-5h-5v-6h5z",  # cross
    "M0-9l2.6 5.4l6 .8l-4.3 4.2l1 5.9l-5.3-2.8l-5.3 2.8l1-5.9l-4.3-4.2l6-.8z",  # star
)


@dataclass(frozen=True, slots=True)
class MapNode:
    key: str
    title: str
    url: str  #: relative to the page the map is drawn on
    shape: int  #: index into SHAPES (the section's position; the last one for no section)
    relations: frozenset[str]  #: some of LINKS_TO, LINKED_FROM, RELATED

    @property
    def relation_text(self) -> str:
        """How it relates, in words, for the text alternative: "links here, related"."""
        return ", ".join(RELATION_LABELS[r] for r in (LINKS_TO, LINKED_FROM, RELATED)
                         if r in self.relations)


@dataclass(frozen=True, slots=True)
class LegendEntry:
    shape: int
    title: str

    @property
    def shape_path(self) -> str:
        return shape_path(self.shape)


@dataclass(frozen=True, slots=True)
class KnowledgeMap:
    svg: str  #: "" when the page has no neighbours
    nodes: tuple[MapNode, ...]  #: every neighbour, in drawing order (the text alternative)
    legend: tuple[LegendEntry, ...]  #: the sections drawn, in config order
    drawn: int  #: how many of `nodes` the drawing shows (all unless more than MAX_NODES)


def neighbourhood(
    key: str,
    links_to: Sequence[str],
    linked_from: Sequence[str],
    related: Sequence[str],
) -> dict[str, frozenset[str]]:
    """Each neighbour of page `key` -> its relations to it (the page itself is left out)."""
    found: dict[str, set[str]] = {}
    for relation, keys in ((LINKS_TO, links_to), (LINKED_FROM, linked_from), (RELATED, related)):
        for other in keys:
            if other != key:
                found.setdefault(other, set()).add(relation)
    return {other: frozenset(relations) for other, relations in sorted(found.items())}


def shape_path(shape: int) -> str:
    return SHAPES[min(shape, len(SHAPES) - 1)]


def layout(lines: Sequence[int]) -> tuple[tuple[int, int], ...]:
    """(x, y) of nodes whose labels take `lines` lines, on a half-ellipse right of the
    centre at (CENTRE_X, 0).

    Rows run from top to bottom, a two-line label's row LINE units taller, so labels never
    overlap; the middle rows sit furthest right, the first and last closer to the centre,
    so each line has its own angle.
    """
    heights = [ROW + LINE * (n - 1) for n in lines]
    total = sum(heights) - (heights[0] + heights[-1]) / 2 if heights else 0
    reach = max(total / 2, ROW / 2) + ROW  # a little beyond the last row: no vertical line
    placed = []
    y = -total / 2
    for n, height in enumerate(heights):
        if n:
            y += (heights[n - 1] + height) / 2
        bow = math.sqrt(max(0.0, 1 - (y / reach) ** 2))
        placed.append((CENTRE_X + round(30 + ARC_X * bow), round(y)))
    return tuple(placed)


def label_lines(title: str) -> tuple[str, ...]:
    """A title in at most two lines of LABEL_CHARS, broken at a space; the words are all
    kept (the drawn text is the link's accessible name, so it must be the whole title)."""
    if len(title) <= LABEL_CHARS:
        return (title,)
    cut = title.rfind(" ", 0, LABEL_CHARS + 1)
    if cut <= 0:
        return (title,)
    return (title[: cut + 1], title[cut + 1 :])


def build_map(title: str, nodes: Sequence[MapNode], legend_titles: Sequence[str]) -> KnowledgeMap:
    """The map of `title`'s page with its neighbours `nodes` (any order: they are sorted)."""
    ordered = tuple(sorted(nodes, key=lambda n: (n.shape, n.title.lower(), n.key)))
    if not ordered:
        return KnowledgeMap("", (), (), 0)
    drawn = ordered[:MAX_NODES]
    shapes = sorted({n.shape for n in drawn})
    legend = tuple(
        LegendEntry(s, legend_titles[s] if s < len(legend_titles) else "Other pages")
        for s in shapes
    )
    return KnowledgeMap(_svg(title, drawn, shapes), ordered, legend, len(drawn))


def _svg(title: str, nodes: Sequence[MapNode], shapes: Sequence[int]) -> str:
    labels = [label_lines(node.title) for node in nodes]
    positions = layout([len(label) for label in labels])
    half = max(max(abs(y) for _, y in positions), ROW // 2) + LINE
    top = -half - MARGIN - TOP
    height = 2 * half + 2 * MARGIN + TOP
    parts = [
        f'<svg class="km" viewBox="0 {top} {WIDTH} {height}" width="{WIDTH}" height="{height}" '
        f'role="group" aria-label="Map of the pages around {_attr(title)}">',
        '<defs><marker id="km-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0 0L10 5L0 10z"/></marker>',
        *(f'<path id="km-k{s}" d="{shape_path(s)}"/>' for s in shapes),
        "</defs>",
    ]
    for node, (x, y) in zip(nodes, positions, strict=True):
        parts.append(_edge(node, x, y))
    for node, label, (x, y) in zip(nodes, labels, positions, strict=True):
        parts.append(_node(node, label, x, y))
    parts.append(
        f'<g class="km-here" aria-current="page"><circle cx="{CENTRE_X}" cy="0" r="{CENTRE_R}"/>'
        f'<text x="4" y="{top + 20}">{html.escape(_short(title, LABEL_CHARS + 12))}</text></g>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _edge(node: MapNode, x: int, y: int) -> str:
    """A line from a node to the centre, clipped to both shapes. An arrow at the node: the
    current page links to it; an arrow halfway, pointing at the centre: it links here; a
    dashed line without arrows: only a `related:` entry."""
    dx, dy = x - CENTRE_X, y
    length = math.hypot(dx, dy) or 1.0
    ux, uy = dx / length, dy / length
    x1, y1 = round(x - ux * (NODE_R + 3)), round(y - uy * (NODE_R + 3))
    x2, y2 = round(CENTRE_X + ux * (CENTRE_R + 2)), round(uy * (CENTRE_R + 2))
    markers = ""
    if LINKS_TO in node.relations:
        markers += ' marker-start="url(#km-arrow)"'
    if LINKED_FROM in node.relations:
        markers += ' marker-mid="url(#km-arrow)"'
    kind = "km-link" if markers else "km-rel"
    mid = f"{round((x1 + x2) / 2)} {round((y1 + y2) / 2)}"
    return f'<polyline class="{kind}" points="{x1} {y1} {mid} {x2} {y2}"{markers}/>'


def _node(node: MapNode, label: Sequence[str], x: int, y: int) -> str:
    # the text is the whole title, so it names the link (no aria-label to disagree with it);
    # a second line keeps the space that ends the first, so the name reads as the title
    lx = x + NODE_R + 6
    if len(label) == 1:
        text = f'<text x="{lx}" y="{y + 5}">{html.escape(label[0])}</text>'
    else:
        text = (
            f'<text x="{lx}" y="{y - 2}">{html.escape(label[0])}'
            f'<tspan x="{lx}" dy="{LINE}">{html.escape(label[1])}</tspan></text>'
        )
    return (
        f'<a href="{_attr(node.url)}">'
        f'<use href="#km-k{node.shape}" class="km-s{node.shape}" x="{x}" y="{y}"/>{text}</a>'
    )


def _short(title: str, limit: int = LABEL_CHARS) -> str:
    if len(title) <= limit:
        return title
    return title[: limit - 1].rstrip() + "…"


def _attr(text: str) -> str:
    return html.escape(text, quote=True)


# -- the whole site -----------------------------------------------------------------------------

SITE_WIDTH = 392  #: a little wider than a neighbourhood map: 30-character labels fit
SITE_NODE_X = 144  #: the column of nodes; the arcs bulge into the room to its left
GROUP_GAP = 16  #: extra room above each section's first row
ARC_REACH = SITE_NODE_X - 12  #: the widest arc's bulge


@dataclass(frozen=True, slots=True)
class SiteGroup:
    """A section (or the pages outside every section) and its pages, in reading order;
    `nodes[0]` is the section's own page when it has one (`headed`)."""

    title: str
    shape: int
    nodes: tuple[MapNode, ...]
    headed: bool


@dataclass(frozen=True, slots=True)
class SiteMap:
    svg: str
    groups: tuple[SiteGroup, ...]  #: also the text alternative
    legend: tuple[LegendEntry, ...]
    links: int  #: arcs drawn: pairs of nodes with a link between them (either way)
    summaries: tuple[SectionSummary, ...] = ()  #: drawn by section: the sections' list
    page_count: int = 0  #: drawn by section: the pages of the site

    @property
    def pages(self) -> int:
        return self.page_count or sum(len(group.nodes) for group in self.groups)


def build_site_map(
    title: str, groups: Sequence[SiteGroup], links: Sequence[tuple[str, str]]
) -> SiteMap:
    """The whole link graph of a site named `title`: `groups` in display order, `links` as
    (from key, to key); a pair linked both ways is one arc, links to pages not drawn are
    left out."""
    rows: list[tuple[MapNode, int, bool]] = []  # node, y, starts its group
    y = TOP
    for group in groups:
        y += GROUP_GAP
        for n, node in enumerate(group.nodes):
            extra = LINE * (len(label_lines(node.title)) - 1) // 2  # half above, half below
            rows.append((node, y + extra, n == 0 and group.headed))
            y += ROW + 2 * extra
    place = {node.key: row_y for node, row_y, _ in rows}
    pairs = sorted(  # each pair top node first, so every arc runs down and bulges left
        {
            (a, b) if place[a] < place[b] else (b, a)
            for a, b in links
            if a != b and a in place and b in place
        },
        key=lambda pair: (place[pair[0]], place[pair[1]]),
    )
    shapes = sorted({group.shape for group in groups})
    height = y + MARGIN
    parts = [
        f'<svg class="km km-site" viewBox="0 0 {SITE_WIDTH} {height}" width="{SITE_WIDTH}" '
        f'height="{height}" role="group" aria-label="Map of every page of {_attr(title)}">',
        "<defs>",
        *(f'<path id="km-k{s}" d="{shape_path(s)}"/>' for s in shapes),
        "</defs>",
        *(_arc(place[a], place[b], height) for a, b in pairs),
    ]
    for node, row_y, heads in rows:
        drawn = _node(node, label_lines(node.title), SITE_NODE_X, row_y)
        parts.append(drawn.replace("<a ", '<a class="km-head" ', 1) if heads else drawn)
    parts.append("</svg>")
    legend = tuple(LegendEntry(g.shape, g.title) for g in groups)
    return SiteMap("".join(parts), tuple(groups), legend, len(pairs))


SITE_MAP_PAGE_LIMIT = 300  #: above this many pages the site map draws sections, not pages


@dataclass(frozen=True, slots=True)
class SectionSummary:
    """One section of a site map drawn by section: its node (the section page, titled with
    its page count), and the other sections its pages link to with the number of links."""

    node: MapNode
    title: str
    pages: int
    links_to: tuple[tuple[str, int], ...]  #: (section title, links from here to there)


def build_section_map(
    title: str, summaries: Sequence[SectionSummary], links: Sequence[tuple[str, str]]
) -> SiteMap:
    """The site map of a large site: one node per section (`summaries` in display order),
    `links` as (from section key, to section key) pairs, drawn like `build_site_map`."""
    groups = [SiteGroup(s.title, s.node.shape, (s.node,), headed=True) for s in summaries]
    drawn = build_site_map(title, groups, links)
    pages = sum(summary.pages for summary in summaries)
    return dataclasses.replace(drawn, summaries=tuple(summaries), page_count=pages)


def _arc(y1: int, y2: int, height: int) -> str:
    """Half an ellipse from one node to another, bulging left: wider the further apart (by
    the square root of the distance, so arcs fill the width instead of piling at its edge)."""
    x = SITE_NODE_X - NODE_R - 2
    half = (y2 - y1) // 2
    reach = max(8, round(ARC_REACH * math.sqrt((y2 - y1) / height)))
    return f'<path class="km-arc" d="M{x} {y1}A{reach} {max(half, 1)} 0 0 0 {x} {y2}"/>'


__all__ = [
    "SITE_MAP_PAGE_LIMIT", "KnowledgeMap", "LegendEntry", "MapNode", "SectionSummary",
    "SiteGroup", "SiteMap", "build_map", "build_section_map", "build_site_map", "layout",
    "neighbourhood", "shape_path",
]
