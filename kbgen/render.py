"""SiteIndex -> `OutputFile`s: every HTML page, plus sitemap, robots.txt and the Atom feed.

Input: the `SiteIndex`, `Config`, and a `Renderer` (the Jinja2 environment, loaded once).
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

import contextlib
import dataclasses
import datetime as dt
import html
import json
import re
import traceback
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import jinja2
import jinja2.meta

from kbgen import links
from kbgen.charts import Chart, ChartRow, section_charts
from kbgen.citations import doi_url, pmc_url, pubmed_url
from kbgen.config import ColumnSpec, Config, SectionSpec
from kbgen.diagnostics import Diagnostic, error
from kbgen.knowledge_map import KnowledgeMap, MapNode, build_map, neighbourhood
from kbgen.model import OutputFile, Page, Reference, slugify
from kbgen.resolve import HOME_KEY, SiteIndex, page_key

ABOUT_KEY = "_page:about"  #: content/about.md, "About this site"
NAV_LIMIT = 40  # a section with more articles links to its section page instead of listing them
GENERATED_ROUTES = ("glossary", "bibliography", "search", "tags")
PREVIEWS_FILE = "previews.json"  #: link-preview data for site.js (see previews_json)
_NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?")


# -- routes ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Router:
    """Maps logical routes to output files and makes relative hrefs between them."""

    directory_urls: bool
    #: (folder of the page, target file) -> URL; every page links to its navigation,
    #: related pages and backlinks, and pages in one folder share their answers
    _urls: dict[tuple[str, str], str] = field(
        default_factory=dict, compare=False, repr=False, init=False
    )

    def file(self, route: str, is_index: bool = False) -> str:
        if route == "":
            return "index.html"
        if is_index or self.directory_urls:
            return f"{route}/index.html"
        return f"{route}.html"

    def page_file(self, page: Page) -> str:
        if page.kind == "home":
            return "index.html"
        if page.kind == "section":
            return self.file(str(page.section), is_index=True)
        if page.kind == "page":
            return self.file(page.slug)
        return self.file(f"{page.section}/{page.slug}")

    def route_file(self, route: str) -> str:
        """Files of generated routes: 'glossary', 'tags', 'tags/<tag>', '<section>'."""
        return self.file(
            route,
            is_index=route == "tags"
            or ("/" not in route and route not in ("glossary", "bibliography", "search")),
        )

    def tag_file(self, tag: str) -> str:
        return self.file(f"tags/{tag_slug(tag)}")

    def href(self, from_file: str, to_file: str, fragment: str | None = None) -> str:
        key = (from_file.rpartition("/")[0], to_file)
        url = self._urls.get(key)
        if url is None:
            url = self._urls[key] = links.relative_url(from_file, to_file, self.directory_urls)
        return f"{url}#{fragment}" if fragment else url


def tag_slug(tag: str) -> str:
    return slugify(tag) or "tag"


# -- template errors ------------------------------------------------------------------------


class TemplateProblem(Exception):
    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


_FOR_PAGE = re.compile(r" \((while rendering|needed for) ([^()]+)\)$")


def merge_repeated(diagnostics: Sequence[Diagnostic]) -> list[Diagnostic]:
    """One diagnostic per template problem, not one per page it breaks.

    A mistake in a template used by 1,000 pages would otherwise be printed 1,000 times; it is
    printed once, naming the first page (by node name) and how many more it broke.
    """
    # In order of first appearance: a lone diagnostic under its position in the list, a
    # template problem under what it says apart from the page, with the pages it broke.
    groups: dict[object, tuple[Diagnostic, list[str]]] = {}
    for position, diagnostic in enumerate(diagnostics):
        found = _FOR_PAGE.search(diagnostic.message)
        if found is None:
            groups[position] = (diagnostic, [])
            continue
        key = (
            diagnostic.path,
            diagnostic.line,
            diagnostic.col,
            diagnostic.severity,
            diagnostic.message[: found.start()],
            found.group(1),
            diagnostic.hint,
        )
        groups.setdefault(key, (diagnostic, []))[1].append(found.group(2))
    merged: list[Diagnostic] = []
    for diagnostic, pages in groups.values():
        if pages:
            found = _FOR_PAGE.search(diagnostic.message)
            assert found is not None
            pages.sort()
            more = f" and {len(pages) - 1} more" if len(pages) > 1 else ""
            message = f"{diagnostic.message[: found.start()]} ({found.group(1)} {pages[0]}{more})"
            diagnostic = dataclasses.replace(diagnostic, message=message)
        merged.append(diagnostic)
    return merged


class BytecodeStore(Protocol):
    """Where compiled templates are kept between processes (the incremental builder passes
    `kbgen.incremental.cache.SealedBytecodeStore`, which authenticates what it reads)."""

    def load(self, key: str) -> bytes | None: ...

    def store(self, key: str, data: bytes) -> None: ...


class _StoredBytecode(jinja2.BytecodeCache):
    """Jinja2's bytecode cache over a `BytecodeStore`. Jinja2's own FileSystemBytecodeCache
    must never be used: it unpickles and runs files at predictable names, unchecked."""

    def __init__(self, store: BytecodeStore) -> None:
        self.store = store

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        code = self.store.load(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        self.store.store(bucket.key, bucket.bytecode_to_string())


class Renderer:
    """The Jinja2 environment (templates parsed once) plus template-error translation."""

    def __init__(self, config: Config, bytecode: BytecodeStore | None = None) -> None:
        self.config = config
        # Compiled templates cached on disk (keyed by name and source checksum, so an
        # edited template is recompiled): saves ~70 ms of compiling per CLI build.
        bytecode_cache = _StoredBytecode(bytecode) if bytecode is not None else None
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(config.templates_dir)),
            autoescape=jinja2.select_autoescape(("html", "xml"), default_for_string=True),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
            # Templates cannot change under a Renderer: the pipeline makes a new one when
            # any template's digest changes. (Checking costs a stat per page rendered.)
            auto_reload=False,
            bytecode_cache=bytecode_cache,
        )
        self.env.filters["date"] = format_date

    def render(self, template_name: str, context: Mapping[str, Any], for_page: str) -> str:
        try:
            template = self.env.get_template(template_name)
            return template.render(context)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateProblem(
                error(
                    self._shown(exc.filename, exc.name),
                    exc.lineno,
                    None,
                    f"template syntax error: {exc.message}",
                    "fix the Jinja2 syntax (unclosed {% block %}, {{ }} or a typo in a tag?)",
                )
            ) from None
        except jinja2.TemplateNotFound as exc:
            # Point at the {% include %}/{% extends %} that names it, when a template does.
            path, line = self._template_frame(exc)
            raise TemplateProblem(
                error(
                    path or self.config.rel(self.config.templates_dir / str(exc.name)),
                    line,
                    None,
                    f"template '{exc.name}' not found (needed for {for_page})",
                    f"create templates/{exc.name} or fix the name on this line"
                    if path
                    else f"create templates/{exc.name} or fix the include/extends name",
                )
            ) from None
        except jinja2.UndefinedError as exc:
            path, line = self._template_frame(exc)
            raise TemplateProblem(
                error(
                    path,
                    line,
                    None,
                    f"undefined template variable: {exc.message} (while rendering {for_page})",
                    "check the variable name; templates see site, page and the names "
                    "documented in README.md",
                )
            ) from None
        except Exception as exc:  # a template error, not a kbgen bug: report with position
            path, line = self._template_frame(exc)
            if path is None:
                raise
            raise TemplateProblem(
                error(
                    path,
                    line,
                    None,
                    f"template error: {type(exc).__name__}: {exc} (while rendering {for_page})",
                    "fix the expression on this template line",
                )
            ) from None

    def _shown(self, filename: str | None, name: str | None) -> str:
        if filename:
            return self.config.rel(Path(filename))
        return f"templates/{name}"

    def _template_frame(self, exc: BaseException) -> tuple[str, int | None]:
        """The innermost traceback frame inside templates/ (Jinja rewrites them to it)."""
        templates = str(self.config.templates_dir)
        found: tuple[str, int | None] = (None, None)  # type: ignore[assignment]
        for frame, line in traceback.walk_tb(exc.__traceback__):
            filename = frame.f_code.co_filename
            if filename.startswith(templates):
                found = (self.config.rel(Path(filename)), line)
        return found

    def preload(self, name: str) -> None:
        """Compile a template now (before forking workers); rendering reports its errors."""
        with contextlib.suppress(jinja2.TemplateError):
            self.env.get_template(name)

    def template_closure(self, name: str) -> frozenset[str] | None:
        """Templates that `name` extends/includes, transitively; None if dynamic."""
        seen: set[str] = set()
        pending = [name]
        while pending:
            current = pending.pop()
            if current in seen:
                continue
            seen.add(current)
            try:
                source, _, _ = self.env.loader.get_source(self.env, current)  # type: ignore[union-attr]
                referenced = jinja2.meta.find_referenced_templates(self.env.parse(source))
            except (jinja2.TemplateError, OSError):
                continue
            for child in referenced:
                if child is None:
                    return None
                pending.append(child)
        return frozenset(seen)


def format_date(value: dt.date | None) -> str:
    if value is None:
        return ""
    return f"{value.day} {value.strftime('%B')} {value.year}"


# -- views -------------------------------------------------------------------------------


@dataclass
class SiteView:
    """Builds template views for one build; all URLs relative to the file being rendered."""

    index: SiteIndex
    config: Config
    router: Router
    _files: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._files = {key: self.router.page_file(page) for key, page in self.index.pages.items()}

    # URLs
    def file_of(self, key: str) -> str:
        return self._files[key]

    def section_file(self, section_id: str) -> str:
        return self.router.file(section_id, is_index=True)

    def absolute(self, file: str) -> str | None:
        if not self.config.base_url:
            return None
        path = (
            file[: -len("index.html")]
            if file.endswith("index.html") and self.config.directory_urls
            else file
        )
        return self.config.base_url + path

    def substitute(self, text: str, source_key: str, current_file: str) -> str:
        targets = self.index.links.get(source_key, ())

        def replace(kind: str, payload: str) -> str:
            if kind == "P":
                route, _, fragment = payload.partition("#")
                return html.escape(
                    self.router.href(current_file, self.router.route_file(route), fragment or None)
                )
            target = targets[int(payload)] if int(payload) < len(targets) else None
            if target is None:
                return "#" if kind == "L" else ""
            if kind == "T":
                return html.escape(self.link_text(source_key, int(payload), target.slug))
            return html.escape(
                self.router.href(current_file, self.file_of(target.slug), target.anchor)
            )

        return links.substitute(text, replace)

    def context_html(self, text: str, source_key: str) -> str:
        """A backlink's sentence: escaped text with title placeholders filled in."""
        targets = self.index.links.get(source_key, ())

        def title(kind: str, payload: str) -> str:
            if kind != "T":
                return ""
            target = targets[int(payload)] if int(payload) < len(targets) else None
            return (
                html.escape(self.link_text(source_key, int(payload), target.slug)) if target else ""
            )

        return links.substitute(html.escape(text, quote=False), title)

    def link_text(self, source_key: str, number: int, target_key: str) -> str:
        """Text of a `[[...]]` link written without `|text`.

        `[[slug]]` shows the target's current title; `[[Title or alias]]` keeps the words
        the writer chose, so a sentence like "see [[Spravato]]" still reads as written.
        """
        written = self.index.pages[source_key].markup.links[number].target
        target = self.index.pages[target_key]
        if written == target.slug or (written == target.section and target.kind == "section"):
            return target.meta.title
        return written

    def page_link(self, key: str, current_file: str) -> dict[str, Any]:
        page = self.index.pages[key]
        return {
            "title": page.meta.title,
            "summary": page.meta.summary,
            "slug": page.slug,
            "url": self.router.href(current_file, self.file_of(key)),
            "draft": page.meta.draft,
        }

    def site(self, current_file: str, current_section: str | None) -> dict[str, Any]:
        def href(file: str, fragment: str | None = None) -> str:
            return self.router.href(current_file, file, fragment)

        sections = []
        for spec in self.config.sections:
            # The size first: a section too big to list is only counted, and its pages do
            # not depend on (and re-render with) its order.
            count = self.index.section_sizes.get(spec.id, 0)
            listed = self.index.articles_by_section.get(spec.id, ()) if count <= NAV_LIMIT else ()
            sections.append(
                {
                    "id": spec.id,
                    "title": spec.title,
                    "description": spec.description,
                    "url": href(self.section_file(spec.id)),
                    "count": count,
                    "current": spec.id == current_section,
                    "articles": [self.page_link(k, current_file) for k in listed],
                    "truncated": count > NAV_LIMIT,
                }
            )
        return {
            "title": self.config.title,
            "description": self.config.description,
            "language": self.config.language,
            "base_url": self.config.base_url,
            "disclaimer": self.config.disclaimer,
            "extra": dict(self.config.extra),
            "sections": sections,
            "review_interval_days": self.config.review_interval_days,
            "search": self.config.search,
            "urls": {
                "home": href("index.html"),
                "root": _root_prefix(current_file),
                "glossary": href(self.router.route_file("glossary")),
                "bibliography": href(self.router.route_file("bibliography")),
                "search": href(self.router.route_file("search")),
                "tags": href(self.router.route_file("tags")),
                "feed": href("feed.xml"),
                # the editorial-policy page, linked from every footer when it exists
                "about": href(self.file_of(ABOUT_KEY)) if ABOUT_KEY in self.index.pages else None,
            },
        }

    def field_views(self, page: Page, spec: SectionSpec | None) -> list[dict[str, Any]]:
        if spec is None:
            return []
        views = []
        for field_spec in spec.fields:
            if (
                field_spec.name not in page.meta.fields
                or field_spec.type == "table"  # tables are not key facts: see table_views
                or not field_spec.show  # chart data (charts.py)
            ):
                continue
            value = page.meta.fields[field_spec.name]
            views.append(
                {
                    "name": field_spec.name,
                    "label": field_spec.label,
                    "type": field_spec.type,
                    "value": _field_text(value),
                    "slug": tag_slug(_field_text(value)),
                    "sort": sort_key(value, field_spec.values),
                }
            )
        return views

    def table_views(self, page: Page, spec: SectionSpec | None) -> list[dict[str, Any]]:
        """The page's `table` fields: columns and rows of cells; a `reference` cell links to
        its number in the page's reference list."""
        if spec is None:
            return []
        numbers = {key: n for n, key in enumerate(page.cited_keys, start=1)}
        tables = []
        for field_spec in spec.fields:
            rows = page.meta.fields.get(field_spec.name)
            if field_spec.type != "table" or not isinstance(rows, tuple) or not rows:
                continue
            tables.append(
                {
                    "name": field_spec.name,
                    "label": field_spec.label,
                    "columns": [
                        {"name": c.name, "label": c.label, "type": c.type}
                        for c in field_spec.columns
                    ],
                    "rows": [
                        [self._cell_view(c, dict(row), numbers) for c in field_spec.columns]
                        for row in rows
                    ],
                }
            )
        return tables

    def _cell_view(
        self, column: ColumnSpec, row: Mapping[str, str], numbers: Mapping[str, int]
    ) -> dict[str, Any]:
        text = row.get(column.name, "")
        view: dict[str, Any] = {
            "type": column.type,
            "text": text,
            "slug": tag_slug(text),
            "number": None,  #: a reference cell's number in the page's reference list
        }
        if column.type == "reference" and text in self.index.references:
            view["number"] = numbers[text]
            view["text"] = _short_reference(self.index.references[text])
        return view

    def reference_view(
        self, ref: Reference, number: int | None = None, uses: int = 0
    ) -> dict[str, Any]:
        return {
            "number": number,
            "key": ref.key,
            "type": ref.type,
            "title": ref.title,
            "authors": _author_list(ref.authors),
            "container": ref.container,
            "year": ref.year,
            "doi": ref.doi,
            "doi_url": doi_url(ref.doi) if ref.doi else None,
            "pmid": ref.pmid,
            "pubmed_url": pubmed_url(ref.pmid) if ref.pmid else None,
            "pmcid": ref.pmcid,
            "pmc_url": pmc_url(ref.pmcid) if ref.pmcid else None,
            "url": ref.url,
            "backrefs": [f"cite-{number}-{n}" for n in range(1, uses + 1)] if number else [],
        }


def _short_reference(ref: Reference) -> str:
    """'Smith 2020', 'Maker Inc 2019': a reference named briefly, for a table cell."""
    who = ref.authors[0].split()[0] if ref.authors else ref.container or ref.title
    return f"{who} {ref.year}" if ref.year else who


def _root_prefix(current_file: str) -> str:
    depth = current_file.count("/")
    return "../" * depth


def _field_text(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def sort_key(value: object, enum_values: tuple[str, ...]) -> str:
    """A value that sorts numerically/by declared order: tables stay sortable without JS."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return f"{value:g}"
    text = str(value)
    if text in enum_values:
        return str(enum_values.index(text))
    match = _NUMBER_RE.search(text)
    return match[0] if match else ""


def _author_list(authors: Iterable[str]) -> str:
    names = list(authors)
    if len(names) > 3:
        return ", ".join(names[:3]) + ", et al."
    return ", ".join(names)


# -- pages -----------------------------------------------------------------------------


@dataclass
class RenderJob:
    """One dependency node: the output it writes and how to produce it from a view."""

    node: str
    file: str | None  #: its output file; None when it writes several (site-files)
    template: str | None  #: the template it renders (None: produced without one)
    context: Callable[[SiteView], dict[str, Any]] | None = None
    produce: Callable[[SiteView], list[OutputFile]] | None = None

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
    ]
    for route, template, builder in generated:
        file = view.router.route_file(route)
        jobs.append(RenderJob(route, file, template, _with_view(builder, file)))
    jobs.append(RenderJob("404", "404.html", "404.html", _with_view(_not_found_context)))
    jobs.append(RenderJob("site-files", None, None, produce=site_files))
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
            "references": _cited_references(view, page),
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
    references = _cited_references(view, page)
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
            "knowledge_map": knowledge_map(view, key, file),
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
    context["json_ld"] = _json_ld(
        view, page, file, [index.references[k] for k in cited if k in index.references]
    )
    return context


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


def plain_description(page: Page) -> str:
    """What describes a page outside its listings (meta and Open Graph descriptions, link
    previews): its plain-language `in_short` when it has one, else its `summary`."""
    return page.meta.in_short or page.meta.summary


def _json_ld(view: SiteView, page: Page, file: str, references: list[Reference]) -> str:
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


def _cited_references(view: SiteView, page: Page) -> list[dict[str, Any]]:
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


def _has_code(page_html: str) -> bool:
    """Whether the page holds highlighted code (only then is pygments.css linked)."""
    return 'class="highlight"' in page_html


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
            "references": _cited_references(view, page) if page else [],
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


def charts_of_section(view: SiteView, spec: SectionSpec, file: str) -> list[Chart]:
    """The charts its schema's number fields allow (charts.py), from its articles' values."""
    numeric = frozenset(f.name for f in spec.fields if f.type == "number")
    if not numeric:
        return []  # most sections: nothing read, nothing drawn
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
            "references": _cited_references(view, page) if page else [],
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


# -- whole site --------------------------------------------------------------------------


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
        locations += [view.absolute(router.route_file(r)) for r in GENERATED_ROUTES]
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


def keys_of(index: SiteIndex) -> list[str]:
    return sorted(index.pages)


__all__ = ["Renderer", "Router", "SiteView", "page_key", "render_all"]
