"""Every link in the built repository site resolves (issue: knowledge graph, acceptance 1).

Reads the session's build of the real content/ (`built_site` in conftest.py, with the same
build options this module once repeated for itself), then parses every HTML file and checks
that each href/src that points inside the site names an existing file and each #fragment
exists in its target.
"""

from __future__ import annotations

import posixpath
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

from conftest import TODAY

from kbgen.incremental import Builder
from kbgen.pipeline import BuildOptions


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name in ("id", "name"):
            if values.get(name) and (name == "id" or tag == "a"):
                self.ids.add(str(values[name]))
        for name in ("href", "src"):
            if values.get(name) and not (tag == "link" and values.get("rel") in
                                         ("canonical", "alternate") and name == "href"
                                         and str(values[name]).startswith("http")):
                self.urls.append(str(values[name]))


def _parse(path: Path) -> _PageParser:
    parser = _PageParser()
    parser.feed(path.read_text("utf-8"))
    return parser


def test_every_internal_link_and_fragment_resolves(built_site: Path) -> None:
    pages = {p.relative_to(built_site).as_posix(): p for p in built_site.rglob("*.html")
             if not p.relative_to(built_site).as_posix().startswith("pagefind/")}
    assert len(pages) > 80
    parsed = {rel: _parse(path) for rel, path in pages.items()}
    failures: list[str] = []
    checked = 0
    for rel, page in parsed.items():
        for url in page.urls:
            parts = urlsplit(url)
            if parts.scheme or url.startswith("//"):
                continue  # external: DOI, PubMed, ...
            if parts.path.startswith("/"):
                # only the 404 page uses root-absolute URLs (it is served at any path)
                assert rel == "404.html", f"{rel}: absolute URL {url}"
                target = parts.path.lstrip("/")
            elif parts.path:
                target = posixpath.normpath(posixpath.join(posixpath.dirname(rel),
                                                           unquote(parts.path)))
            else:
                target = rel
            if target in ("", ".") or parts.path.endswith("/"):
                target = posixpath.join(target, "index.html") if target not in ("", ".") \
                    else "index.html"
            checked += 1
            if not (built_site / target).is_file():
                failures.append(f"{rel}: {url} -> missing {target}")
                continue
            if parts.fragment and target in parsed and \
                    unquote(parts.fragment) not in parsed[target].ids:
                failures.append(f"{rel}: {url} -> no id '{parts.fragment}' in {target}")
    assert checked > 2000
    assert failures == []


def test_sitemap_and_canonical_need_base_url(built_site: Path) -> None:
    # the repository config leaves base_url empty: no sitemap, no canonical
    assert not (built_site / "sitemap.xml").exists()
    assert "Sitemap:" not in (built_site / "robots.txt").read_text()
    assert 'rel="canonical"' not in (built_site / "index.html").read_text()
    feed = (built_site / "feed.xml").read_text()
    assert feed.count("<entry>") == 20 and re.search(r"<id>urn:kbgen:", feed)


def test_sitemap_lists_every_page_when_base_url_is_set(make_site) -> None:
    from conftest import MINIMAL_CONFIG, article

    root = make_site({"content/mechanism/a.md": article("A", "[[a]]", extra="status: contested")},
                     config=MINIMAL_CONFIG + "base_url: https://kb.example.org/sub\n")
    result = Builder(root / "config.yaml", BuildOptions(today=TODAY)).build()
    assert result.ok
    sitemap = (root / "site/sitemap.xml").read_text()
    assert "<loc>https://kb.example.org/sub/mechanism/a/</loc>" in sitemap
    assert "<loc>https://kb.example.org/sub/</loc>" in sitemap
    assert "Sitemap: https://kb.example.org/sub/sitemap.xml" in \
        (root / "site/robots.txt").read_text()
    page = (root / "site/mechanism/a/index.html").read_text()
    assert '<link rel="canonical" href="https://kb.example.org/sub/mechanism/a/">' in page
    not_found = (root / "site/404.html").read_text()
    assert 'href="/sub/static/' in not_found  # works at any depth under the sub-path
