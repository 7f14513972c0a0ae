"""Machine-readable outputs: JSON-LD, the Atom feed, sitemap.xml, robots.txt and the
link-preview data.

Input: a `SiteView` (and, for JSON-LD, a page with its cited references). Output: the text of
each file (`site_files` returns them as `OutputFile`s of the `site-files` node). Everything
is escaped for where it goes: `<` as `\\u003c` inside `<script>`, XML escaping in the feed.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from kbgen.citations import doi_url
from kbgen.config_types import Config
from kbgen.model import OutputFile, Page, Reference
from kbgen.routes import PREVIEWS_FILE, SiteView, tag_slug


def plain_description(page: Page) -> str:
    """What describes a page outside its listings (meta and Open Graph descriptions, link
    previews): its plain-language `in_short` when it has one, else its `summary`."""
    return page.meta.in_short or page.meta.summary


def json_ld(view: SiteView, page: Page, file: str, references: list[Reference]) -> str:
    data: dict[str, Any] = {
        "@context": "https://schema.org",
        "@type": "MedicalWebPage",
        "name": page.meta.title,
        "description": page.meta.summary,
        "inLanguage": view.config.language,
        "about": {
            "@type": "Drug",
            "name": "Ketamine",
            "alternateName": ["Esketamine", "Arketamine"],
        },
    }
    if page.meta.last_reviewed:
        data["lastReviewed"] = page.meta.last_reviewed.isoformat()
    if page.meta.reviewed_by:
        data["reviewedBy"] = [{"@type": "Person", "name": n} for n in page.meta.reviewed_by]
    absolute = view.absolute(file)
    if absolute:
        data["url"] = absolute
    citations = []
    for ref in references:
        work: dict[str, Any] = {
            "@type": "ScholarlyArticle"
            if ref.type not in ("label", "book", "regulatory")
            else "CreativeWork",
            "name": ref.title,
        }
        if ref.year:
            work["datePublished"] = str(ref.year)
        if ref.doi:
            work["sameAs"] = doi_url(ref.doi)
        elif ref.url:
            work["sameAs"] = ref.url
        citations.append(work)
    if citations:
        data["citation"] = citations
    website: dict[str, Any] = {"@type": "WebSite", "name": view.config.title}
    if view.config.base_url:
        website["url"] = view.config.base_url
    data["isPartOf"] = website
    return _script_json(data)


def cited_references(view: SiteView, page: Page) -> list[dict[str, Any]]:
    """The page's numbered reference list (by first citation), with back-links per use."""
    uses: dict[str, int] = {}
    for cite in page.markup.citations:  # the body's: each has a back-link target
        uses[cite.key] = uses.get(cite.key, 0) + 1
    return [
        view.reference_view(view.index.references[k], n, uses.get(k, 0))
        for n, k in enumerate(page.cited_keys, start=1)
        if k in view.index.references
    ]


def _script_json(data: object) -> str:
    """JSON safe inside <script>: no "<" at all, so no "</script>" or "<!--" can appear."""
    return json.dumps(data, ensure_ascii=False, sort_keys=True).replace("<", "\\u003c")


def xml_escape(text: str, quotes: bool = False) -> str:
    """Escape text for XML (sitemap, feed); `quotes` too inside a double-quoted attribute.
    (xml.sax.saxutils does the same but imports urllib.request, ~20 ms per build.)"""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace('"', "&quot;") if quotes else text


def previews_json(view: SiteView) -> bytes:
    """Output file -> {title, summary} of every page: what link previews show (the
    `summary` there is the page's `in_short` when it has one: see plain_description).

    One small file for the whole site, fetched by site.js on the first hover or focus of a
    link and cached by the browser, instead of repeating summaries in every page.
    """
    data = {
        view.file_of(key): {"title": page.meta.title, "summary": plain_description(page)}
        for key, page in view.index.pages.items()
    }
    return json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def site_files(view: SiteView) -> list[OutputFile]:
    config, index, router = view.config, view.index, view.router
    files = [OutputFile("robots.txt", _robots(config).encode(), "site-files")]
    files.append(OutputFile(PREVIEWS_FILE, previews_json(view), "site-files"))
    articles = sorted(
        (k for k, p in index.pages.items() if p.kind == "article"),
        key=lambda k: (-(index.pages[k].meta.last_reviewed or dt.date.min).toordinal(), k),
    )
    files.append(
        OutputFile("feed.xml", _atom(view, articles[: config.feed_entries]).encode(), "site-files")
    )
    if config.base_url:
        # every page the site has, including home and section pages without a source file
        files_listed = {"index.html"} | {view.section_file(s.id) for s in config.sections}
        files_listed |= {view.file_of(k) for k in index.pages}
        locations = [view.absolute(f) for f in sorted(files_listed)]
        locations += [view.absolute(router.tag_file(t)) for t in index.pages_by_tag]
        locations += [view.absolute(router.route_file(r)) for r in view.routes]
        body = "".join(f"  <url><loc>{xml_escape(str(loc))}</loc></url>\n" for loc in locations)
        sitemap = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n'
            f"{body}</urlset>\n"
        )
        files.append(OutputFile("sitemap.xml", sitemap.encode(), "site-files"))
    return files


def _robots(config: Config) -> str:
    text = "User-agent: *\nAllow: /\n"
    if config.base_url:
        text += f"Sitemap: {config.base_url}sitemap.xml\n"
    return text


def _atom(view: SiteView, article_keys: list[str]) -> str:
    config = view.config
    pages = [view.index.pages[k] for k in article_keys]
    updated = max(
        (p.meta.last_reviewed for p in pages if p.meta.last_reviewed), default=dt.date(2000, 1, 1)
    )
    feed_id = config.base_url or "urn:kbgen:" + tag_slug(config.title)
    entries = []
    for key, page in zip(article_keys, pages, strict=True):
        file = view.file_of(key)
        href = view.absolute(file) or view.router.href("feed.xml", file)
        entry_id = view.absolute(file) or f"urn:kbgen:{tag_slug(config.title)}:{page.slug}"
        reviewed = (page.meta.last_reviewed or updated).isoformat()
        entries.append(
            "  <entry>\n"
            f"    <title>{xml_escape(page.meta.title)}</title>\n"
            f'    <link href="{xml_escape(href, quotes=True)}"/>\n'
            f"    <id>{xml_escape(entry_id)}</id>\n"
            f"    <updated>{reviewed}T00:00:00Z</updated>\n"
            f"    <summary>{xml_escape(page.meta.summary)}</summary>\n"
            "  </entry>\n"
        )
    self_link = (
        f'  <link rel="self" href="{xml_escape(config.base_url, quotes=True)}feed.xml"/>\n'
        if config.base_url
        else ""
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<feed xmlns="http://www.w3.org/2005/Atom">\n'
        f"  <title>{xml_escape(config.title)}</title>\n"
        f"  <subtitle>{xml_escape(config.description)}</subtitle>\n"
        f"  <id>{xml_escape(feed_id)}</id>\n"
        f"  <updated>{updated.isoformat()}T00:00:00Z</updated>\n"
        f"  <author><name>{xml_escape(config.title)}</name></author>\n"
        f"{self_link}" + "".join(entries) + "</feed>\n"
    )
