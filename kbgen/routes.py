"""Where every page lives and how pages link to each other: routes, relative URLs and the
site view templates read.

Input: the `SiteIndex` and `Config`. Output: `Router` (output file of every page, tag and
generated route; `directory_urls` decides `x/index.html` or `x.html`) and `SiteView`, which
substitutes the Markdown stage's link placeholders with relative URLs once all pages are
known and builds the plain dicts (links, fields, references, the site header) templates see.
Every internal URL is relative to the page being rendered, so the site works from any host
and any sub-path.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kbgen import links
from kbgen.citations import doi_url, pmc_url, pubmed_url
from kbgen.config_types import ColumnSpec, Config, SectionSpec
from kbgen.model import Page, Reference, slugify
from kbgen.site_index import SiteIndex

NAV_LIMIT = 40  # a section with more articles links to its section page instead of listing them
ABOUT_KEY = "_page:about"  #: content/about.md, "About this site"


GENERATED_ROUTES = ("glossary", "bibliography", "search", "tags", "map")
#: generated pages whose template a project's own templates/ may lack (it was copied before
#: the page existed): without it the page is left out, not the build failed
OPTIONAL_TEMPLATES = {"map": "map.html"}


PREVIEWS_FILE = "previews.json"  #: link-preview data for site.js (see previews_json)


_NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?")


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
        """Files of generated routes: 'glossary', 'map', 'tags', 'tags/<tag>', '<section>'."""
        return self.file(
            route,
            is_index=route == "tags"
            or ("/" not in route and route not in ("glossary", "bibliography", "search", "map")),
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


def generated_routes(config: Config) -> tuple[str, ...]:
    """GENERATED_ROUTES without those whose optional template is missing from templates/."""
    return tuple(
        route
        for route in GENERATED_ROUTES
        if route not in OPTIONAL_TEMPLATES
        or (config.templates_dir / OPTIONAL_TEMPLATES[route]).is_file()
    )


def missing_pages(config: Config) -> tuple[str, ...]:
    """Notes for `--verbose`: the generated pages left out for want of their template."""
    present = generated_routes(config)
    return tuple(
        f"/{route}/ not written: templates/{template} is missing (kbgen's own templates/ has it)"
        for route, template in OPTIONAL_TEMPLATES.items()
        if route not in present
    )


@dataclass
class SiteView:
    """Builds template views for one build; all URLs relative to the file being rendered."""

    index: SiteIndex
    config: Config
    router: Router
    _files: dict[str, str] = field(default_factory=dict)
    #: the generated routes this build writes (GENERATED_ROUTES less those whose optional
    #: template the project lacks); looked up once per build
    routes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self._files = {key: self.router.page_file(page) for key, page in self.index.pages.items()}
        self.routes = generated_routes(self.config)

    def missing_pages(self) -> tuple[str, ...]:
        return missing_pages(self.config)

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
                "map": href(self.router.route_file("map")),
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
