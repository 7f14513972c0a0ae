"""The knowledge map (kbgen/knowledge_map.py): its links are the link graph, its bytes are
the same for the same neighbourhood, and it is accessible without JavaScript."""

from __future__ import annotations

import itertools
import random
import re
import subprocess
from pathlib import Path, PurePosixPath
from urllib.parse import urljoin

from conftest import MINIMAL_CONFIG, REPO, anchors, article, read_out, run_build, run_cli, snapshot

from kbgen.knowledge_map import (
    LINE,
    LINKED_FROM,
    LINKS_TO,
    MAX_NODES,
    RELATED,
    ROW,
    MapNode,
    build_map,
    label_lines,
    layout,
    neighbourhood,
)

MAP_RE = re.compile(r'<section class="knowledge-map".*?</section>', re.S)
SVG_RE = re.compile(r"<svg class=\"km\".*?</svg>", re.S)


def _site_path(page_url: str, href: str) -> str | None:
    """An internal href as a site path ("/a/b/"), or None for external links."""
    if href.startswith(("http:", "https:", "mailto:")):
        return None
    return urljoin(page_url, href).partition("#")[0]


def _content_urls() -> set[str]:
    """The URL of every page in content/, from its file name (directory URLs)."""
    urls = set()
    for path in (REPO / "content").rglob("*.md"):
        rel = PurePosixPath(path.relative_to(REPO / "content").as_posix())
        if rel.name in ("index.md", "_index.md"):
            urls.add("/" + (str(rel.parent) + "/" if str(rel.parent) != "." else ""))
        else:
            urls.add(f"/{rel.with_suffix('')}/")
    return urls


def _between(html: str, start: str, end: str = "</section>") -> str:
    at = html.find(start)
    return html[at:html.index(end, at)] if at >= 0 else ""


def test_every_article_map_links_exactly_its_link_graph(built_site: Path) -> None:
    """For each article: the map's nodes are the pages its body links to, the pages in its
    'Linked from' list and its 'Related' list, taken from the page itself, not the index."""
    pages = _content_urls()
    checked = 0
    for path in sorted(built_site.glob("*/*/index.html")):
        url = "/" + path.relative_to(built_site).parent.as_posix() + "/"
        if url not in pages:
            continue  # tags, glossary, ...
        html = path.read_text("utf-8")
        body = _between(html, '<div class="article-body">', '<footer class="article-footer"')
        expected = {
            target
            for part in (body, _between(html, '<section class="backlinks"'),
                         _between(html, '<section class="related"'))
            for href, _, _ in anchors(part)
            if (target := _site_path(url, href)) in pages and target != url
        }
        found = MAP_RE.search(html)
        assert found, f"{url} has no knowledge map"
        svg = SVG_RE.search(found.group(0))
        assert svg is not None
        drawn = {_site_path(url, href) for href, _, _ in anchors(svg.group(0))}
        listed = {_site_path(url, href) for href, _, _ in
                  anchors(_between(found.group(0), '<details class="km-list">', "</details>"))}
        assert drawn == expected, url
        assert listed == expected, url
        checked += 1
    assert checked >= 40  # every article of the real site, not a lucky few


def test_map_nodes_are_links_named_by_their_full_titles(built_site: Path) -> None:
    html = (built_site / "indications/treatment-resistant-depression/index.html").read_text()
    svg = SVG_RE.search(html)
    assert svg is not None
    links = anchors(svg.group(0))
    assert links
    # the drawn text is the whole title (wrapped, never cut), so it is the accessible name
    titles = {text for _, text, _ in links}
    assert "Enantiomers: esketamine and arketamine" in titles  # two lines, one name
    assert not any("…" in text or "aria-label" in attrs for _, text, attrs in links)
    assert "Treatment-resistant depression" not in titles  # the current page is no link
    assert 'aria-current="page"' in svg.group(0)


def test_long_titles_wrap_at_a_space_and_keep_every_word() -> None:
    assert label_lines("Oral ketamine") == ("Oral ketamine",)
    lines = label_lines("Enantiomers: esketamine and arketamine")
    assert len(lines) == 2 and "".join(lines) == "Enantiomers: esketamine and arketamine"
    assert all(len(line) <= 31 for line in lines)


def test_neighbourhood_merges_relations_and_leaves_out_the_page() -> None:
    found = neighbourhood("a", ["b", "a", "c"], ["c", "d"], ["b", "e"])
    assert found == {
        "b": frozenset({LINKS_TO, RELATED}),
        "c": frozenset({LINKS_TO, LINKED_FROM}),
        "d": frozenset({LINKED_FROM}),
        "e": frozenset({RELATED}),
    }


def _nodes(count: int) -> list[MapNode]:
    return [
        MapNode(f"p{i}", f"Page {i:02d}", f"../p{i}/", i % 5, frozenset({LINKS_TO}))
        for i in range(count)
    ]


def test_same_neighbourhood_in_any_order_gives_the_same_bytes() -> None:
    nodes = _nodes(23)
    first = build_map("Here", nodes, ["A", "B", "C", "D", "E"]).svg
    shuffled = nodes[:]
    random.Random(7).shuffle(shuffled)
    assert build_map("Here", shuffled, ["A", "B", "C", "D", "E"]).svg == first


def test_layout_gives_every_node_its_own_row_inside_the_drawing() -> None:
    for count in (1, 2, 7, 30, MAX_NODES):
        points = layout([1] * count)
        ys = [y for _, y in points]
        assert len(set(ys)) == count
        assert all(b - a == ROW for a, b in itertools.pairwise(ys))
        assert abs(ys[0] + ys[-1]) <= 1  # centred on the current page
        assert all(isinstance(v, int) for point in points for v in point)
        assert all(50 < x < 200 for x, _ in points)


def test_a_two_line_label_gets_a_taller_row() -> None:
    ys = [y for _, y in layout([1, 2, 1])]
    assert ys[1] - ys[0] > ROW and ys[2] - ys[1] > ROW
    assert abs((ys[2] - ys[0]) - (2 * ROW + LINE)) <= 1


def test_a_hub_page_draws_at_most_max_nodes_and_lists_them_all() -> None:
    result = build_map("Hub", _nodes(MAX_NODES + 5), ["A", "B", "C", "D", "E"])
    assert result.drawn == MAX_NODES
    assert len(result.nodes) == MAX_NODES + 5
    assert result.svg.count("<a ") == MAX_NODES


def test_a_page_without_neighbours_has_no_map(make_site) -> None:
    root = make_site({"content/mechanism/lonely.md": article("Lonely", extra="status: contested")})
    assert run_build(root).ok
    assert "knowledge-map" not in read_out(root, "mechanism/lonely/index.html")


def _ring_site(count: int) -> dict[str, str]:
    files = {}
    for i in range(count):
        body = f"See [[p{(i + 1) % count}]] and [[p{(i + 7) % count}]]."
        files[f"content/mechanism/p{i}.md"] = article(
            f"Page {i}", body, extra=f"status: established\nrelated: [p{(i + 3) % count}]"
        )
    return files


def test_maps_are_the_same_bytes_across_builds_and_jobs(make_site, tmp_path: Path) -> None:
    root = make_site(_ring_site(60))  # above the parallel thresholds
    outputs = []
    for jobs in ("1", "2", "2"):
        out = tmp_path / f"out-{len(outputs)}"
        done = run_cli(root, "build", "--jobs", jobs, "--output", str(out))
        assert done.returncode == 0, done.stderr
        outputs.append(snapshot(out))
        subprocess.run(["rm", "-rf", str(root / ".kbgen-cache")], check=True)  # cold again
    maps = [
        {rel: MAP_RE.findall(data.decode()) for rel, data in out.items() if rel.endswith(".html")}
        for out in outputs
    ]
    assert sum(1 for found in maps[0].values() if found) == 60
    assert maps[0] == maps[1] == maps[2]
    assert outputs[0] == outputs[1] == outputs[2]
    assert outputs[0]["map/index.html"].count(b'class="km-arc"') == 120  # the site map too


def test_the_map_keeps_the_median_article_within_its_weight_budget(built_site: Path) -> None:
    """Issue #18: the pictures may add at most 15 KB to the median article; the map's
    markup is most of that (its CSS, about 2 KB, is shared and cached)."""
    sizes = sorted(
        len(found.group(0).encode())
        for path in built_site.glob("*/*/index.html")
        if (found := MAP_RE.search(path.read_text("utf-8")))
    )
    assert len(sizes) >= 40
    assert sizes[len(sizes) // 2] < 11_000, sizes


def test_an_edit_redraws_only_the_maps_that_show_what_changed(make_site) -> None:
    """A body edit that keeps the links redraws no other map; a new title redraws the maps
    of its neighbours (in this small site every page re-renders anyway: the navigation lists
    every title)."""
    root = make_site(_ring_site(12))
    assert run_build(root).ok
    page = root / "content/mechanism/p0.md"
    page.write_text(page.read_text() + "\nA new paragraph without links.\n")
    result = run_build(root)
    assert {n for n in result.rendered if n.startswith("page:")} == {"page:p0"}
    page.write_text(page.read_text().replace("title: Page 0", "title: Page zero"))
    result = run_build(root)
    redrawn = {n for n in result.rendered if n.startswith("page:")}
    # p0 links to p1 and p7 and lists p3; p11 and p5 link to it; p9 lists it as related
    assert {"page:p1", "page:p7", "page:p3", "page:p11", "page:p5", "page:p9"} <= redrawn
    assert "Page zero" in read_out(root, "mechanism/p1/index.html").split("knowledge-map")[1]



def test_a_theme_without_the_map_neither_draws_it_nor_redraws_for_it(
    make_site, monkeypatch
) -> None:
    """The map is drawn when the template first reads it (render_pictures.DrawnOnUse): with
    an article.html that leaves it out, no page draws one, and a title edit re-renders only
    the pages that show the title elsewhere (links, lists), not those that would show it
    only in their maps."""
    import kbgen.routes

    monkeypatch.setattr(kbgen.routes, "NAV_LIMIT", 0)  # the navigation would list every title
    # p6 links to p0 in its own words and lists five other pages as related, so it shows
    # p0's title only in its map
    files = {
        f"content/mechanism/p{i}.md": article(
            f"Page {i}",
            f"See [the next one](p{(i + 1) % 7}.md).",
            extra="status: established" + ("\nrelated: [p1, p2, p3, p4, p5]" if i == 6 else ""),
        )
        for i in range(7)
    }
    redrawn = {}
    for theme in ("with map", "without map"):
        root = make_site(files)
        if theme == "without map":
            template = root / "templates/article.html"
            text = template.read_text("utf-8")
            assert '{% include "partials/knowledge_map.html" %}' in text
            template.write_text(text.replace('{% include "partials/knowledge_map.html" %}', ""))
        assert run_build(root, jobs=1).ok
        page = root / "content/mechanism/p0.md"
        # (a new title that keeps the reading order: the previous/next links stay)
        page.write_text(page.read_text().replace("title: Page 0", "title: Page 0, renamed"))
        result = run_build(root, jobs=1)
        assert result.ok and result.mode == "warm"
        redrawn[theme] = {n for n in result.rendered if n.startswith("page:")}
        drawn = "knowledge-map" in read_out(root, "mechanism/p1/index.html")
        assert drawn == (theme == "with map")
    assert "page:p6" in redrawn["with map"]  # its map shows the new title
    assert "page:p6" not in redrawn["without map"]
    assert {"page:p0", "page:p1"} <= redrawn["without map"]  # p1 lists p0 under "Linked from"


# -- the site-map page --------------------------------------------------------------------------

SITE_SVG_RE = re.compile(r'<svg class="km km-site".*?</svg>', re.S)
ARC_RE = re.compile(r'<path class="km-arc" d="M\d+ (\d+)A\d+ \d+ 0 0 0 \d+ (\d+)"/>')
USE_RE = re.compile(r'<a (?:class="km-head" )?href="([^"]+)"><use href="#km-k(\d+)" '
                    r'class="km-s\d+" x="\d+" y="(\d+)"/>')


def _drawn_graph(svg: str) -> tuple[list[tuple[str, int]], set[frozenset[str]]]:
    """The site map's nodes (href, shape) top to bottom, and its arcs as pairs of hrefs."""
    nodes = [(href, int(shape), int(y)) for href, shape, y in USE_RE.findall(svg)]
    at = {y: href for href, _, y in nodes}
    arcs = {frozenset((at[int(a)], at[int(b)])) for a, b in ARC_RE.findall(svg)}
    return [(href, shape) for href, shape, _ in nodes], arcs


def test_the_site_map_draws_every_page_by_section_and_every_link_once(make_site) -> None:
    root = make_site({
        "content/mechanism/a.md": article("Alpha", "[[b]] and [[c]]", extra="status: established"),
        "content/mechanism/b.md": article("Beta", "[[a]]", extra="status: established"),
        "content/routes/c.md": article("Gamma", "[[a]]", extra="bioavailability: 1%"),
        "content/about.md": "---\ntitle: About\nsummary: About it.\n---\nAbout [[c]].\n",
    })
    assert run_build(root).ok
    html = read_out(root, "map/index.html")
    svg = SITE_SVG_RE.search(html)
    assert svg is not None
    nodes, arcs = _drawn_graph(svg.group(0))
    # sections in config order, each its own shape; pages outside every section last
    assert nodes == [("../mechanism/", 0), ("../mechanism/a/", 0), ("../mechanism/b/", 0),
                     ("../routes/", 1), ("../routes/c/", 1), ("../", 2), ("../about/", 2)]
    # a->b and b->a are one arc; the generated section and home pages link to nothing
    assert arcs == {frozenset(("../mechanism/a/", "../mechanism/b/")),
                    frozenset(("../mechanism/a/", "../routes/c/")),
                    frozenset(("../about/", "../routes/c/"))}
    names = {href: text for href, text, _ in anchors(svg.group(0))}
    assert names["../mechanism/a/"] == "Alpha" and names["../about/"] == "About"
    listed = anchors(html.split('<section class="site-map-list"')[1].split("</section>")[0])
    assert [href for href, _, _ in listed] == [href for href, _ in nodes]
    assert "<h3>Routes</h3>" in html and "<script" not in svg.group(0)
    # every page's footer links to it
    assert 'href="../../map/">Site map</a>' in read_out(root, "mechanism/a/index.html")


def test_the_repository_site_map_shows_every_page(built_site: Path) -> None:
    html = (built_site / "map/index.html").read_text("utf-8")
    svg = SITE_SVG_RE.search(html)
    assert svg is not None
    nodes, arcs = _drawn_graph(svg.group(0))
    drawn = {_site_path("/map/", href) for href, _ in nodes}
    assert drawn == _content_urls()
    assert len(nodes) == len(drawn)  # each page once
    assert len(arcs) >= 100
    assert len({shape for _, shape in nodes}) == 9  # eight sections and the other pages


def test_above_the_limit_the_site_map_draws_sections_and_reads_no_title(
    make_site, monkeypatch
) -> None:
    """Past SITE_MAP_PAGE_LIMIT pages: one node per section (named with its page count), an
    arc per pair of linked sections, and the list names the sections with their counts and
    links; a title edit then leaves the map page alone."""
    import kbgen.render_pictures
    import kbgen.routes

    monkeypatch.setattr(kbgen.render_pictures, "SITE_MAP_PAGE_LIMIT", 3)
    # as in a large site, the navigation counts each section's pages instead of listing them
    monkeypatch.setattr(kbgen.routes, "NAV_LIMIT", 0)
    root = make_site({
        "content/mechanism/a.md": article("Alpha", "[[b]] and [[c]]", extra="status: established"),
        "content/mechanism/b.md": article("Beta", "[[a]]", extra="status: established"),
        "content/routes/c.md": article("Gamma", "[[a]]", extra="bioavailability: 1%"),
        "content/about.md": "---\ntitle: About\nsummary: About it.\n---\nAbout [[c]].\n",
    })
    assert run_build(root, jobs=1).ok
    html = read_out(root, "map/index.html")
    svg = SITE_SVG_RE.search(html)
    assert svg is not None
    nodes, arcs = _drawn_graph(svg.group(0))
    assert nodes == [("../mechanism/", 0), ("../routes/", 1), ("../", 2)]
    # Alpha -> Gamma and Gamma -> Alpha are one arc; About -> Gamma joins "other" to routes
    assert arcs == {frozenset(("../mechanism/", "../routes/")), frozenset(("../", "../routes/"))}
    names = [text for _, text, _ in anchors(svg.group(0))]
    assert names == ["Mechanism (3 pages)", "Routes (2 pages)", "Other pages (2 pages)"]
    listed = html.split('<section class="site-map-list"')[1].split("</section>")[0]
    assert "Mechanism</a>: 3 pages; links to Routes (1 link)" in listed
    assert "Other pages</a>: 2 pages; links to Routes (1 link)" in listed
    assert "Alpha" not in listed and "<h3>" not in listed
    assert "7 pages in 3 groups, drawn by section" in html
    before = (root / "site/map/index.html").stat().st_mtime_ns
    path = root / "content/mechanism/b.md"
    path.write_text(path.read_text("utf-8").replace("title: Beta", "title: Beta two"), "utf-8")
    result = run_build(root, jobs=1)
    assert result.ok and result.mode == "warm" and "page:b" in result.rendered
    assert "map" not in result.rendered
    assert (root / "site/map/index.html").stat().st_mtime_ns == before


def test_a_project_without_map_html_builds_without_the_site_map(make_site) -> None:
    """templates/ copied before the site map existed: no /map/ page, none in sitemap.xml, a
    note under --verbose; the build succeeds."""
    root = make_site({
        "content/mechanism/a.md": article("Alpha", "[[b]]", extra="status: established"),
        "content/mechanism/b.md": article("Beta", "[[a]]", extra="status: established"),
    }, config=MINIMAL_CONFIG.replace("title:", "base_url: https://kb.example/\ntitle:", 1))
    (root / "templates/map.html").unlink()
    done = run_cli(root, "build", "--verbose")
    assert done.returncode == 0, done.stderr
    assert "note: /map/ not written: templates/map.html is missing" in done.stderr
    assert not (root / "site/map").exists()
    assert "/map/" not in read_out(root, "sitemap.xml")
    assert "/mechanism/a/" in read_out(root, "sitemap.xml")
