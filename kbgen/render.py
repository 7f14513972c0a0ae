"""The render stage: SiteIndex -> `OutputFile`s, one render job per page and generated file.

Input: the `SiteIndex`, `Config`, and a `Renderer` (templates.py, loaded once). URLs and the
site view live in routes.py, JSON-LD/feed/sitemap in feeds.py, the pictures a page draws (its
knowledge map, timeline, section charts, the site map) in render_pictures.py; this module
holds the jobs and the context each page template gets.
Output: `OutputFile`s keyed by dependency node (`page:<key>`, `tag:<name>`, `glossary`, ...) and
diagnostics for template problems, each naming the template file and line. `render_all` is
the stage; each node is a `RenderJob` that takes the view when it runs, so the incremental
builder (kbgen/incremental/rendering.py) can render any subset of them, in worker processes,
through a view that records what each one reads.

Templates see *views* (plain dicts built here), never the model objects, so what a template
can reach is explicit. Every internal URL is relative to the page being rendered; link
placeholders left by the Markdown stage are substituted here, when all pages are known.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from kbgen.config_types import Config, SectionSpec
from kbgen.diagnostics import Diagnostic, error
from kbgen.feeds import cited_references, json_ld, plain_description, site_files
from kbgen.model import OutputFile, Page
from kbgen.render_pictures import (
    DrawnOnUse,
    charts_of_section,
    knowledge_map,
    site_map,
    timeline_charts,
)
from kbgen.routes import OPTIONAL_TEMPLATES, Router, SiteView
from kbgen.site_index import HOME_KEY, SiteIndex, page_key
from kbgen.templates import Renderer, TemplateProblem, merge_repeated


@dataclass
class RenderJob:
    """One dependency node: the output it writes and how to produce it from a view."""

    node: str
    file: str | None  #: its output file; None when it writes several (site-files)
    template: str | None  #: the template it renders (None: produced without one)
    context: Callable[[SiteView], dict[str, Any]] | None = None
    produce: Callable[[SiteView], list[OutputFile]] | None = None
    #: templates whose presence (not bytes) decides what it writes: sitemap.xml lists the
    #: optional pages (routes.OPTIONAL_TEMPLATES) the project has templates for
    presence_read: tuple[str, ...] = ()

    def outputs(self, view: SiteView, renderer: Renderer) -> list[OutputFile]:
        if self.produce is not None:
            return self.produce(view)
        assert self.template is not None and self.context is not None and self.file is not None
        text = renderer.render(self.template, self.context(view), self.node)
        return [OutputFile(self.file, text.encode("utf-8"), self.node)]


def page_jobs(view: SiteView) -> list[RenderJob]:
    """One render job per dependency node (every HTML page, then the site files).

    Jobs receive the view when they run, so the incremental builder can hand each one a
    view that records what it reads (see deps.py).
    """
    jobs: list[RenderJob] = []
    index = view.index
    for key, page in index.pages.items():
        file = view.file_of(key)
        template = {
            "home": "home.html",
            "section": "section.html",
            "article": "article.html",
            "page": "page.html",
        }[page.kind]
        jobs.append(RenderJob(f"page:{key}", file, template, _with_view(_page_context, key, file)))
    for spec in view.config.sections:
        if f"_section:{spec.id}" not in index.pages:
            file = view.section_file(spec.id)
            jobs.append(
                RenderJob(
                    f"page:_section:{spec.id}",
                    file,
                    "section.html",
                    _with_view(_section_context, spec, None, file),
                )
            )
    if HOME_KEY not in index.pages:
        jobs.append(
            RenderJob(
                f"page:{HOME_KEY}",
                "index.html",
                "home.html",
                _with_view(_home_context, None, "index.html"),
            )
        )
    for tag in index.pages_by_tag:
        file = view.router.tag_file(tag)
        jobs.append(RenderJob(f"tag:{tag}", file, "tag.html", _with_view(_tag_context, tag, file)))
    generated: list[tuple[str, str, Callable[[SiteView, str], dict[str, Any]]]] = [
        ("tags", "tags.html", _tags_context),
        ("glossary", "glossary.html", _glossary_context),
        ("bibliography", "bibliography.html", _bibliography_context),
        ("search", "search.html", _search_context),
        ("map", "map.html", _site_map_context),
    ]
    for route, template, builder in generated:
        if route not in view.routes:
            continue  # its optional template is missing: `missing_pages` says so
        file = view.router.route_file(route)
        jobs.append(RenderJob(route, file, template, _with_view(builder, file)))
    jobs.append(RenderJob("404", "404.html", "404.html", _with_view(_not_found_context)))
    optional = tuple(OPTIONAL_TEMPLATES.values())
    jobs.append(RenderJob("site-files", None, None, produce=site_files, presence_read=optional))
    return jobs


def _with_view(
    function: Callable[..., dict[str, Any]], *args: Any
) -> Callable[[SiteView], dict[str, Any]]:
    return lambda view: function(view, *args)


def _base_context(
    view: SiteView, file: str, section: str | None, title: str, description: str, kind: str
) -> dict[str, Any]:
    return {
        "site": view.site(file, section),
        "kind": kind,
        "title": title,
        "description": description,
        "canonical": view.absolute(file),
        "breadcrumbs": [],
        "json_ld": None,
        "draft": False,
    }


def _page_context(view: SiteView, key: str, file: str) -> dict[str, Any]:
    page = view.index.pages[key]
    if page.kind == "section":
        spec = view.config.section(str(page.section))
        assert spec is not None
        return _section_context(view, spec, page, file)
    if page.kind == "home":
        return _home_context(view, page, file)
    if page.kind == "page":
        return _standalone_context(view, key, page, file)
    return _article_context(view, key, page, file)


def _page_text(view: SiteView, key: str, page: Page, file: str) -> dict[str, Any]:
    """What article and standalone page views share: the words and the body."""
    return {
        "title": page.meta.title,
        "summary": page.meta.summary,
        "in_short": page.meta.in_short,
        "slug": page.slug,
        "html": view.substitute(page.markup.html, key, file),
    }


def _standalone_context(view: SiteView, key: str, page: Page, file: str) -> dict[str, Any]:
    """A top-level page (content/about.md): its body, dates and references; no section."""
    context = _base_context(view, file, None, page.meta.title, plain_description(page), "page")
    context.update(
        {
            "page": {
                **_page_text(view, key, page, file),
                "last_reviewed": page.meta.last_reviewed,
                "draft": page.meta.draft,
            },
            "references": cited_references(view, page),
            "breadcrumbs": [{"title": "Home", "url": view.router.href(file, "index.html")}],
            "draft": page.meta.draft,
            "has_code": _has_code(page.markup.html),
        }
    )
    return context


def _article_context(view: SiteView, key: str, page: Page, file: str) -> dict[str, Any]:
    index, router = view.index, view.router
    spec = view.config.section(str(page.section))
    context = _base_context(
        view, file, page.section, page.meta.title, plain_description(page), "article"
    )
    cited = page.cited_keys
    references = cited_references(view, page)
    charts = timeline_charts(view, key, page, references)
    previous, following = index.prev_next(key)
    reviewed = page.meta.last_reviewed
    next_review = (
        reviewed + dt.timedelta(days=view.config.review_interval_days) if reviewed else None
    )
    context.update(
        {
            "page": {
                **_page_text(view, key, page, file),
                "toc": [{"level": h.level, "id": h.id, "text": h.text} for h in page.markup.toc],
                "tags": [
                    {"name": t, "url": router.href(file, router.tag_file(t))}
                    for t in page.meta.tags
                ],
                "fields": view.field_views(page, spec),
                "tables": view.table_views(page, spec),
                "last_reviewed": reviewed,
                "next_review": next_review,
                "reviewed_by": list(page.meta.reviewed_by),
                "word_count": page.markup.word_count,
                "reading_minutes": max(1, round(page.markup.word_count / 220)),
                "draft": page.meta.draft,
                "source": page.source,
            },
            "section": {
                "id": page.section,
                "title": spec.title if spec else page.section,
                "url": router.href(file, view.section_file(str(page.section))),
            },
            "references": references,
            "backlinks": [
                {
                    **view.page_link(b.source_slug, file),
                    "context": view.context_html(b.context, b.source_slug),
                }
                for b in index.backlinks.get(key, ())
            ],
            "related": [view.page_link(k, file) for k in index.related.get(key, ())],
            "knowledge_map": DrawnOnUse(lambda: knowledge_map(view, key, file)),
            "charts": charts,
            "previous": view.page_link(previous, file) if previous else None,
            "next": view.page_link(following, file) if following else None,
            "breadcrumbs": [
                {"title": "Home", "url": router.href(file, "index.html")},
                {
                    "title": spec.title if spec else str(page.section),
                    "url": router.href(file, view.section_file(str(page.section))),
                },
            ],
            "draft": page.meta.draft,
            "has_code": _has_code(page.markup.html),
        }
    )
    context["json_ld"] = json_ld(
        view, page, file, [index.references[k] for k in cited if k in index.references]
    )
    return context


def _has_code(page_html: str) -> bool:
    """Whether the page holds highlighted code (only then is pygments.css linked)."""
    return 'class="highlight"' in page_html


def _index_letter(term: str) -> str:
    """The glossary heading a term is listed under: its first letter, or '#'."""
    first = unicodedata.normalize("NFKD", term[:1]).encode("ascii", "ignore").decode().upper()
    return first if first.isalpha() else "#"


def _section_context(
    view: SiteView, spec: SectionSpec, page: Page | None, file: str
) -> dict[str, Any]:
    index, router = view.index, view.router
    title = page.meta.title if page else spec.title
    summary = page.meta.summary if page else spec.description
    description = plain_description(page) if page else summary
    context = _base_context(view, file, spec.id, title, description, "section")
    key = f"_section:{spec.id}"
    articles = []
    for article_key in index.articles_by_section.get(spec.id, ()):
        article = index.pages[article_key]
        articles.append(
            {
                **view.page_link(article_key, file),
                "fields": view.field_views(article, spec),
                "tags": list(article.meta.tags),
            }
        )
    context.update(
        {
            "section": {
                "id": spec.id,
                "title": spec.title,
                "description": spec.description,
                "url": "./" if view.config.directory_urls else "index.html",
            },
            "intro_html": view.substitute(page.markup.html, key, file) if page else "",
            "has_code": _has_code(page.markup.html) if page else False,
            "references": cited_references(view, page) if page else [],
            "fields": [
                {"name": f.name, "label": f.label, "type": f.type}
                for f in spec.fields
                if f.type != "table" and f.show  # a list per article: no cell in the comparison
            ],
            "articles": articles,
            "charts": charts_of_section(view, spec, file),
            "breadcrumbs": [{"title": "Home", "url": router.href(file, "index.html")}],
            "page": {
                "title": title,
                "summary": summary,
                "last_reviewed": page.meta.last_reviewed if page else None,
            },
        }
    )
    return context


def _home_context(view: SiteView, page: Page | None, file: str) -> dict[str, Any]:
    title = page.meta.title if page else view.config.title
    summary = page.meta.summary if page else view.config.description
    description = plain_description(page) if page else summary
    context = _base_context(view, file, None, title, description, "home")
    recent = sorted(
        (k for k, p in view.index.pages.items() if p.kind == "article"),
        key=lambda k: (-(view.index.pages[k].meta.last_reviewed or dt.date.min).toordinal(), k),
    )[:8]
    context.update(
        {
            "intro_html": view.substitute(page.markup.html, HOME_KEY, file) if page else "",
            "has_code": _has_code(page.markup.html) if page else False,
            "references": cited_references(view, page) if page else [],
            "page": {
                "title": title,
                "summary": summary,
                "last_reviewed": page.meta.last_reviewed if page else None,
            },
            "recent": [view.page_link(k, file) for k in recent],
        }
    )
    return context


def _tag_context(view: SiteView, tag: str, file: str) -> dict[str, Any]:
    context = _base_context(view, file, None, f"Tag: {tag}", f"Articles tagged '{tag}'", "tag")
    context.update(
        {
            "tag": tag,
            "articles": [view.page_link(k, file) for k in view.index.pages_by_tag[tag]],
            "breadcrumbs": [
                {"title": "Home", "url": view.router.href(file, "index.html")},
                {"title": "Tags", "url": view.router.href(file, view.router.route_file("tags"))},
            ],
        }
    )
    return context


def _tags_context(view: SiteView, file: str) -> dict[str, Any]:
    context = _base_context(view, file, None, "Tags", "All tags used on this site", "tags")
    context["tags"] = [
        {"name": tag, "count": len(keys), "url": view.router.href(file, view.router.tag_file(tag))}
        for tag, keys in view.index.pages_by_tag.items()
    ]
    context["breadcrumbs"] = [{"title": "Home", "url": view.router.href(file, "index.html")}]
    return context


def _glossary_context(view: SiteView, file: str) -> dict[str, Any]:
    context = _base_context(
        view,
        file,
        None,
        "Glossary",
        "Plain-language definitions of the terms used on this site",
        "glossary",
    )
    terms = []
    for term in sorted(view.index.glossary, key=lambda t: t.term.lower()):
        article = (
            view.page_link(term.article, file)
            if term.article and term.article in view.index.pages
            else None
        )
        terms.append(
            {
                "id": term.id,
                "term": term.term,
                "letter": _index_letter(term.term),
                "definition": term.definition,
                "aliases": list(term.aliases),
                "article": article,
            }
        )
    context["terms"] = terms
    context["breadcrumbs"] = [{"title": "Home", "url": view.router.href(file, "index.html")}]
    return context


def _bibliography_context(view: SiteView, file: str) -> dict[str, Any]:
    context = _base_context(
        view,
        file,
        None,
        "Bibliography",
        "Every source cited on this site, with the articles that cite it",
        "bibliography",
    )
    entries = []
    for key, ref in sorted(
        view.index.references.items(),
        key=lambda item: (item[1].authors[:1], item[1].year or 0, item[0]),
    ):
        entry = view.reference_view(ref)
        entry["cited_by"] = [view.page_link(k, file) for k in view.index.citing_pages.get(key, ())]
        entries.append(entry)
    context["references"] = entries
    context["breadcrumbs"] = [{"title": "Home", "url": view.router.href(file, "index.html")}]
    return context


def _site_map_context(view: SiteView, file: str) -> dict[str, Any]:
    context = _base_context(
        view, file, None, "Site map", "Every page of the site and the links between them", "map"
    )
    context["site_map"] = site_map(view, file)
    context["breadcrumbs"] = [{"title": "Home", "url": view.router.href(file, "index.html")}]
    return context


def _search_context(view: SiteView, file: str) -> dict[str, Any]:
    context = _base_context(view, file, None, "Search", "Search the knowledge base", "search")
    context["breadcrumbs"] = [{"title": "Home", "url": view.router.href(file, "index.html")}]
    return context


def _not_found_context(view: SiteView) -> dict[str, Any]:
    # A host serves 404.html at any missing path, so relative URLs would break: use the
    # site's absolute path (from base_url) instead.
    context = _base_context(
        view, "404.html", None, "Page not found", "The page you asked for does not exist", "404"
    )
    base_path = (
        "/" + view.config.base_url.split("://", 1)[-1].partition("/")[2]
        if view.config.base_url
        else "/"
    )
    _make_absolute(context["site"], base_path)
    return context


def _make_absolute(site: dict[str, Any], base_path: str) -> None:
    site["urls"] = {
        name: (base_path + url if url is not None and not url.startswith(("/", "http")) else url)
        for name, url in site["urls"].items()  # None: no such page (urls.about)
    }
    site["urls"]["root"] = base_path
    for section in site["sections"]:
        section["url"] = base_path + section["url"]
        for article in section["articles"]:
            article["url"] = base_path + article["url"]


def render_all(
    index: SiteIndex, config: Config, renderer: Renderer, extra_jobs: Iterable[RenderJob] = ()
) -> tuple[list[OutputFile], list[Diagnostic]]:
    """The render stage: every page and site file, in memory, in one process.

    A template problem is reported once (at its line, naming the first page it broke and how
    many more); a syntax error stops rendering, since it would repeat for every page.
    """
    view = SiteView(index, config, Router(config.directory_urls))
    jobs, diagnostics = unique_outputs([*page_jobs(view), *extra_jobs], config)
    outputs: list[OutputFile] = []
    problems: list[Diagnostic] = []
    for job in jobs:
        try:
            outputs += job.outputs(view, renderer)
        except TemplateProblem as problem:
            problems.append(problem.diagnostic)
            if problem.diagnostic.message.startswith("template syntax error"):
                break
    return outputs, diagnostics + merge_repeated(problems)


def unique_outputs(
    jobs: list[RenderJob], config: Config
) -> tuple[list[RenderJob], list[Diagnostic]]:
    """Drop (and report) jobs whose output file another job already writes."""
    kept: list[RenderJob] = []
    diagnostics: list[Diagnostic] = []
    seen_files: dict[str, str] = {}
    for job in jobs:
        if job.file is not None and job.file in seen_files:
            diagnostics.append(
                error(
                    config.rel(config.content_dir),
                    None,
                    None,
                    f"two pages would be written to '{job.file}' "
                    f"({seen_files[job.file]} and {job.node})",
                    "rename a tag, section or article so URLs differ",
                )
            )
            continue
        if job.file is not None:
            seen_files[job.file] = job.node
        kept.append(job)
    return kept, diagnostics


def keys_of(index: SiteIndex) -> list[str]:
    return sorted(index.pages)


__all__ = ["Renderer", "Router", "SiteView", "page_key", "render_all"]
