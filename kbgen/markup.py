"""Markdown body -> `Markup` (HTML with placeholders, headings, anchors, links, citations).

Input: a page body, the file line it starts on, the markup options and the glossary.
Output: `Markup` (model.py), which depends on nothing else, so it can be cached by content
digest and computed in worker processes.

`MarkupEngine` sets up Python-Markdown with toc, tables, fenced_code + codehilite (Pygments),
footnotes, admonition, attr_list, def_list, abbr and sane_lists, plus our extension, whose
parts live in their own modules:

* markup_capture.py: inline patterns for `[[wikilinks]]` and `[@citations]`, and a final
  treeprocessor that numbers citations by first use, records every internal link (rewriting
  its href to a placeholder, see links.py), collects element ids (the page's anchors),
  refuses `javascript:`-style URLs and unknown attributes (markup_urls.py), and marks the
  first use of each glossary term (markup_glossary.py);
* markup_rawhtml.py: raw HTML is escaped by default (`raw_html: escape`), cleaned fragment by
  fragment by nh3 with an allowlist (`sanitize`), or passed through (`allow`);
* markup_limits.py: bodies nested too deeply to convert are refused with a reason.

Headings get Python-Markdown's ids, kept clear of the ids the templates use (RESERVED_IDS).
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence

import markdown
from markdown.extensions import Extension
from markdown.extensions.abbr import AbbrExtension
from markdown.extensions.admonition import AdmonitionExtension
from markdown.extensions.attr_list import AttrListExtension
from markdown.extensions.codehilite import CodeHiliteExtension
from markdown.extensions.def_list import DefListExtension
from markdown.extensions.fenced_code import FencedCodeExtension
from markdown.extensions.footnotes import FootnoteExtension
from markdown.extensions.sane_lists import SaneListExtension
from markdown.extensions.tables import TableExtension
from markdown.extensions.toc import TocExtension
from markdown.extensions.toc import slugify as toc_slugify
from pygments.formatters import HtmlFormatter

from kbgen import links, speedups
from kbgen.config_types import MarkdownOptions
from kbgen.markup_capture import CaptureTreeprocessor, CitationPattern, WikiLinkPattern
from kbgen.markup_limits import bracket_flood, nesting_problem, recursion_problem
from kbgen.markup_rawhtml import RawHtmlPostprocessor, record_raw_html
from kbgen.markup_state import ConversionState
from kbgen.model import GlossaryTerm, Heading, Markup

#: ids the shipped templates (and serve's overlay) give their own elements: a heading whose
#: text would give one of these ("## Main") gets `main_1` instead, as a repeated heading does
#: (tests/test_markup.py checks the list against templates/)
RESERVED_IDS = frozenset(
    {
        "main", "site-nav", "search-q", "search-hint", "search-page-q", "search-results",
        "search-filters", "search-status", "search-keys", "related-title", "backlinks-title",
        "references-title", "articles-title", "recent-title", "sections-title",
        "comparison-title", "comparison-caption", "kbgen-errors", "in-short-title",
        # the pictures (knowledge_map.py, charts.py): their headings, SVG defs and figures
        "map-title", "charts-title", "km-arrow", "ch-hatch", "chart-timing",
        "chart-bioavailability", "chart-trial-rates", "chart-history", "map-list-title",
    }
)


def pygments_css() -> str:
    """Light and dark code highlighting styles (dark follows the site's theme switch)."""
    light = HtmlFormatter(style="default").get_style_defs(".highlight")  # type: ignore[no-untyped-call]
    dark = HtmlFormatter(style="monokai").get_style_defs(  # type: ignore[no-untyped-call]
        ":root[data-theme='dark'] .highlight"
    )
    dark_auto = HtmlFormatter(style="monokai").get_style_defs(  # type: ignore[no-untyped-call]
        ":root:not([data-theme='light']) .highlight"
    )
    return f"{light}\n{dark}\n@media (prefers-color-scheme: dark) {{\n{dark_auto}\n}}\n"


class _KbExtension(Extension):
    """Registers our parts among Python-Markdown's (the priorities place them between the
    stock processors) and, with `raw_html: escape`, removes the raw-HTML ones."""

    def __init__(
        self,
        state: ConversionState,
        glossary: Sequence[GlossaryTerm],
        options: MarkdownOptions,
        shortcuts: bool,
    ) -> None:
        super().__init__()
        self.shortcuts = shortcuts
        self.state = state
        self.glossary = glossary
        self.options = options

    def extendMarkdown(self, md: markdown.Markdown) -> None:
        # Above footnotes (175) and links (160), below backslash escapes (180).
        md.inlinePatterns.register(WikiLinkPattern(links.WIKILINK_RE.pattern, md), "kb_wiki", 178)
        md.inlinePatterns.register(
            CitationPattern(links.CITATION_GROUP_RE.pattern, md), "kb_cite", 177
        )
        # Priority 1: after toc (5) and attr_list (8), so every id is final.
        md.treeprocessors.register(
            CaptureTreeprocessor(md, self.state, self.glossary, self.options), "kb_capture", 1
        )
        if self.shortcuts:
            state = self.state
            speedups.install(md, lambda: state.body)
        if self.options.raw_html == "escape":
            md.preprocessors.deregister("html_block")
            md.inlinePatterns.deregister("html")
        else:
            record_raw_html(md, self.state)
            # Before raw_html (30), which puts the stashed fragments back into the page.
            md.postprocessors.register(
                RawHtmlPostprocessor(md, self.state, self.options.raw_html == "sanitize"),
                "kb_raw_html",
                31,
            )


class MarkupEngine:
    """A configured Markdown converter; build one per process and reuse it."""

    def __init__(
        self,
        options: MarkdownOptions,
        glossary: Sequence[GlossaryTerm] = (),
        shortcuts: bool | None = None,
    ) -> None:
        """`shortcuts`: use kbgen's byte-identical speed-ups (kbgen/speedups.py); None: when
        the installed Python-Markdown and Python are versions they were verified against."""
        self.options = options
        self._glossary = glossary
        self.shortcuts = speedups.OFF_REASON is None if shortcuts is None else shortcuts
        self._state = ConversionState()
        self._md = self._new_markdown()

    def _new_markdown(self) -> markdown.Markdown:
        options = self.options
        # Extension objects, not names: a name is looked up among the installed packages'
        # entry points, ~20 ms per process.
        markdown_class = speedups.FastMarkdown if self.shortcuts else markdown.Markdown
        return markdown_class(
            extensions=[
                TocExtension(
                    permalink="#",
                    permalink_title="Link to this section",
                    permalink_class="headerlink",
                    toc_depth=f"2-{options.toc_depth}",
                    slugify=_heading_slug,
                ),
                TableExtension(),
                FencedCodeExtension(),
                CodeHiliteExtension(
                    css_class="highlight",
                    guess_lang=False,
                    pygments_formatter=speedups.html_formatter if self.shortcuts else "html",
                ),
                FootnoteExtension(BACKLINK_TITLE="Back to reference %d"),
                AdmonitionExtension(),
                AttrListExtension(),
                DefListExtension(),
                AbbrExtension(),
                SaneListExtension(),
                _KbExtension(self._state, self._glossary, options, self.shortcuts),
            ],
            output_format="html",
        )

    def convert(self, body: str, body_line: int) -> Markup:
        too_deep = nesting_problem(body, body_line) or (
            None if self.shortcuts else bracket_flood(body, body_line)
        )
        if too_deep is not None:
            return Markup("", (), frozenset(), (), (), (too_deep,), len(body.split()))
        state = self._state
        state.__init__()  # type: ignore[misc]
        state.body, state.body_line = body, body_line
        self._md.reset()
        try:
            output = self._md.convert(body)
        except RecursionError:  # nesting that the line-based pre-check cannot see
            # The converter is left half-way through its processors; a reused instance
            # would silently skip Markdown in every later page. Start a fresh one.
            self._md = self._new_markdown()
            problem = recursion_problem(body, body_line)
            return Markup("", (), frozenset(), (), (), (problem,), len(body.split()))
        toc = tuple(_flatten_toc(getattr(self._md, "toc_tokens", [])))
        return Markup(
            html=output,
            toc=toc,
            anchors=frozenset(state.anchors),
            links=tuple(state.links),
            citations=tuple(state.citations),
            problems=tuple(state.problems),
            word_count=len(body.split()),
        )


def _heading_slug(text: str, separator: str) -> str:
    """Python-Markdown's heading id, kept clear of the ids the page template uses itself."""
    slug: str = toc_slugify(text, separator)
    return f"{slug}_1" if slug in RESERVED_IDS else slug


def _flatten_toc(tokens: Iterable[dict[str, object]]) -> Iterable[Heading]:
    for token in tokens:
        yield Heading(int(str(token["level"])), str(token["id"]), html.unescape(str(token["name"])))
        children = token.get("children")
        if isinstance(children, list):
            yield from _flatten_toc(children)
