"""Markdown body -> `Markup` (HTML with placeholders, headings, anchors, links, citations).

Input: a page body, the file line it starts on, the markup options and the glossary.
Output: `Markup`, which depends on nothing else, so it can be cached by content digest and
computed in worker processes.

Python-Markdown runs with toc, tables, fenced_code + codehilite (Pygments), footnotes,
admonition, attr_list, def_list, abbr and sane_lists, plus our extension:

* inline patterns for `[[wikilinks]]` and `[@citations]`;
* a final treeprocessor that numbers citations by first use, records every internal link
  (rewriting its href to a placeholder, see links.py), collects element ids (the page's
  anchors), refuses `javascript:`-style URLs, and marks the first use of each glossary term.

Raw HTML is escaped by default (`raw_html: escape`), cleaned by nh3 with an allowlist
(`sanitize`), or passed through (`allow`).
"""

from __future__ import annotations

import dataclasses
import html
import re
import xml.etree.ElementTree as etree
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

import markdown
import nh3
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
from markdown.inlinepatterns import InlineProcessor
from markdown.postprocessors import Postprocessor
from markdown.treeprocessors import Treeprocessor
from pygments.formatters import HtmlFormatter

from kbgen import links, speedups
from kbgen.config_types import MarkdownOptions
from kbgen.model import CiteRef, GlossaryTerm, Heading, LinkKind, LinkRef, Markup

BLOCK_TAGS = frozenset(
    {
        "p",
        "li",
        "td",
        "th",
        "dd",
        "dt",
        "blockquote",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "figcaption",
        "caption",
    }
)
NO_GLOSSARY_TAGS = frozenset(
    {
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "a",
        "code",
        "pre",
        "abbr",
        "sup",
        "dfn",
        "script",
        "style",
        "kbd",
        "samp",
        "th",
    }
)
SENTENCE_END_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")
CONTEXT_MARK = "\x00"
_SPACE_BEFORE_PUNCT_RE = re.compile(r"\s+([.,;:!?)])")
MAX_CONTEXT = 280
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
        "chart-bioavailability", "chart-trial-rates",
    }
)
MAX_QUOTE_DEPTH = 100  #: blockquote levels
MAX_INDENT = 400  #: leading columns (100 list levels of 4 spaces)

# The allowlist for `raw_html: sanitize` (documented in docs/trust-model.md).
SANITIZE_TAGS = frozenset(
    {
        "a",
        "abbr",
        "b",
        "blockquote",
        "br",
        "caption",
        "cite",
        "code",
        "col",
        "colgroup",
        "dd",
        "del",
        "details",
        "dfn",
        "div",
        "dl",
        "dt",
        "em",
        "figcaption",
        "figure",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "i",
        "img",
        "ins",
        "kbd",
        "li",
        "mark",
        "ol",
        "p",
        "pre",
        "q",
        "s",
        "samp",
        "small",
        "span",
        "strong",
        "sub",
        "summary",
        "sup",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "u",
        "ul",
        "var",
    }
)
SANITIZE_ATTRIBUTES = {
    "*": {"id", "class", "title", "lang", "dir"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan", "align"},
    "th": {"colspan", "rowspan", "align", "scope"},
    "ol": {"start"},
}


# Attributes an element in the Markdown tree may carry: what Python-Markdown and its
# extensions write (toc, footnotes, tables, abbr) plus harmless ones for `{: ...}`. Everything
# else, above all `on*` event handlers and `style`, is refused (see _check_attributes).
ALLOWED_ATTRIBUTES = frozenset(
    {
        "id",
        "class",
        "title",
        "alt",
        "href",
        "src",
        "width",
        "height",
        "lang",
        "dir",
        "colspan",
        "rowspan",
        "align",
        "scope",
        "start",
        "reversed",
        "role",
        "loading",
    }
)
_TABLE_ALIGN_RE = re.compile(r"^text-align: (?:left|right|center);?$")
_URL_ATTRIBUTES = frozenset(
    {"href", "src", "action", "formaction", "xlink:href", "poster", "background", "cite", "data"}
)


def _attribute_allowed(tag: str, name: str, value: str) -> bool:
    if name in ALLOWED_ATTRIBUTES or name.startswith(("aria-", "data-kb-")):
        return True
    # the tables extension aligns columns with an inline style
    return name == "style" and tag in ("th", "td") and bool(_TABLE_ALIGN_RE.match(value))


def url_scheme_refused(url: str, is_image: bool = False) -> str | None:
    """The scheme of a URL a browser would run or render as a document, else None.

    Character references are decoded first, as the browser will: Python-Markdown keeps
    `&#106;avascript:` verbatim in the attribute, and the browser reads it as `javascript:`.
    `links.unsafe_scheme` then ignores whitespace and control characters inside the scheme.
    """
    decoded = url
    for _ in range(3):  # `&amp;#106;` decodes twice; more is not an attack a browser runs
        unescaped = html.unescape(decoded)
        if unescaped == decoded:
            break
        decoded = unescaped
    return links.unsafe_scheme(url, is_image=is_image) or links.unsafe_scheme(
        decoded, is_image=is_image
    )


def _unsafe_url_problem(
    line: int, col: int, scheme: str, is_image: bool
) -> tuple[int, int, str, str]:
    what = "image" if is_image else "link"
    return (
        line,
        col,
        f"{what} URL with the unsafe scheme '{scheme}:' is not allowed",
        "link to an https:// address or another article; script and data URLs are refused",
    )


def _locate(body: str, body_line: int, *needles: str) -> tuple[int, int]:
    """File line and column of the first needle found in the body (else the body's start).

    Whitespace in a needle matches any whitespace: Python-Markdown expands tabs to spaces.
    """
    for needle in needles:
        words = needle.split()
        found = re.search(r"\s+".join(map(re.escape, words)), body) if words else None
        index = found.start() if found else -1
        if index >= 0:
            line_start = body.rfind("\n", 0, index) + 1
            return body_line + body.count("\n", 0, index), index - line_start + 1
    return body_line, 1


class _RawHtmlUrls(HTMLParser):
    """Collects (tag, attribute, value) for URL attributes in raw HTML (entities decoded)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in _URL_ATTRIBUTES and value is not None:
                self.urls.append((tag, name, value))

    handle_startendtag = handle_starttag


def raw_html_url_problems(
    fragments: Iterable[str], body: str, body_line: int
) -> list[tuple[int, int, str, str]]:
    """Unsafe URLs in raw HTML kept by `raw_html: sanitize` or `allow`: always refused."""
    problems = []
    for fragment in fragments:
        parser = _RawHtmlUrls()
        parser.feed(fragment)
        parser.close()
        start = body.find(fragment)  # to place the problems; -1 if Markdown changed its tabs
        for tag, name, value in parser.urls:
            is_image = tag == "img" and name == "src"
            scheme = url_scheme_refused(value, is_image=is_image)
            if scheme is None:
                continue
            if start >= 0:
                offset_line, col = _locate(fragment, 0, value, f"{name}=")
                line_start = body.rfind("\n", 0, start) + 1
                line = body_line + body.count("\n", 0, start) + offset_line
                col += start - line_start if offset_line == 0 else 0
            else:
                line, col = _locate(body, body_line, value, f"{name}=")
            problems.append(_unsafe_url_problem(line, col, scheme, is_image))
    return problems


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


@dataclass
class _ConversionState:
    """Per-conversion scratch space shared by our inline patterns and treeprocessor."""

    body: str = ""
    body_line: int = 1
    links: list[LinkRef] = field(default_factory=list)
    citations: list[CiteRef] = field(default_factory=list)
    anchors: set[str] = field(default_factory=set)
    problems: list[tuple[int, int, str, str]] = field(default_factory=list)
    glossary_used: list[str] = field(default_factory=list)
    raw_html: list[int] = field(default_factory=list)  #: stash indices holding raw HTML


class _WikiLinkPattern(InlineProcessor):
    def handleMatch(  # type: ignore[override]
        self, m: re.Match[str], data: str
    ) -> tuple[etree.Element, int, int]:
        parsed = links.parse_wikilink(m.group(1))
        element = etree.Element("a")
        element.set("data-kb-wiki", m.group(1))
        element.text = markdown.util.AtomicString(parsed.text or "")
        return element, m.start(0), m.end(0)


class _CitationPattern(InlineProcessor):
    def handleMatch(  # type: ignore[override]
        self, m: re.Match[str], data: str
    ) -> tuple[etree.Element | None, int | None, int | None]:
        items = links.parse_citation_group(m.group(1))
        if items is None:
            return None, None, None
        element = etree.Element("sup")
        element.set("class", "cite")
        element.set("data-kb-cite", "\x1f".join(f"{key}\x1e{loc or ''}" for key, loc in items))
        return element, m.start(0), m.end(0)


class _CaptureTreeprocessor(Treeprocessor):
    """Runs last: placeholders, anchors, citations, URL safety, glossary terms."""

    def __init__(
        self,
        md: markdown.Markdown,
        state: _ConversionState,
        glossary: Sequence[GlossaryTerm],
        options: MarkdownOptions,
    ) -> None:
        super().__init__(md)
        self.state = state
        self.glossary = glossary
        self.options = options
        forms = sorted(
            {
                (form, term.id)
                for term in glossary
                for form in (term.term, *term.aliases)
                if form.strip()
            },
            key=lambda pair: (-len(pair[0]), pair[0]),
        )
        self.term_by_form = {form.lower(): term_id for form, term_id in forms}
        self.term_by_id = {term.id: term for term in glossary}
        self.glossary_re = (
            re.compile(
                r"(?<![\w-])(" + "|".join(re.escape(form) for form, _ in forms) + r")(?![\w-])",
                re.IGNORECASE,
            )
            if forms
            else None
        )

    def run(self, root: etree.Element) -> None:
        state = self.state
        self._link_elements: list[tuple[int, etree.Element]] = []
        matcher = links.PositionMatcher(
            links.scan_positions(state.body, state.body_line), state.body_line
        )
        parents = {child: parent for parent in root.iter() for child in parent}
        previous = {
            child: (parent[i - 1] if i else None)
            for parent in root.iter()
            for i, child in enumerate(parent)
        }
        cite_numbers: dict[str, int] = {}
        cite_uses: dict[str, int] = {}
        for element in list(root.iter()):
            self._check_attributes(element)
            element_id = element.get("id")
            if element_id:
                state.anchors.add(element_id)
            if element.tag == "a":
                self._capture_link(element, matcher, parents)
            elif element.tag == "img":
                self._check_url(element, "src", matcher, is_image=True)
            elif element.tag == "sup" and element.get("data-kb-cite") is not None:
                self._render_citation(element, matcher, cite_numbers, cite_uses)
                _take_space_before(element, parents, previous)
        # Contexts are taken only now: a sentence may hold later links whose text (a title
        # placeholder) is filled in further down the loop.
        contexts = _sentences_around([element for _, element in self._link_elements], parents)
        for (index, _), context in zip(self._link_elements, contexts, strict=True):
            state.links[index] = dataclasses.replace(state.links[index], context=context)
        self._link_elements.clear()
        if self.glossary_re is not None and self.options.glossary_tooltips:
            self._mark_glossary(root, set())

    # -- links ----------------------------------------------------------------------
    def _capture_link(
        self,
        element: etree.Element,
        matcher: links.PositionMatcher,
        parents: dict[etree.Element, etree.Element],
    ) -> None:
        wiki = element.attrib.pop("data-kb-wiki", None)
        if wiki is not None:
            parsed = links.parse_wikilink(wiki)
            line, col = matcher.take("wiki", wiki)
            self._add_link(
                element,
                parents,
                "wiki",
                parsed.target,
                parsed.anchor,
                parsed.text is not None,
                line,
                col,
            )
            return
        href = element.get("href")
        if href is None:
            return
        if self._check_url(element, "href", matcher):
            return
        if links.is_internal_markdown_link(href):
            line, col = matcher.take("url", href)
            path, _, anchor = href.partition("#")
            self._add_link(element, parents, "md", path, anchor or None, True, line, col)
        elif href.startswith("#") and len(href) > 1 and "class" not in element.attrib:
            line, col = matcher.take("url", href)
            self.state.links.append(LinkRef("anchor", "", href[1:], True, line, col))

    def _add_link(
        self,
        element: etree.Element,
        parents: dict[etree.Element, etree.Element],
        kind: LinkKind,
        target: str,
        anchor: str | None,
        has_text: bool,
        line: int,
        col: int,
    ) -> None:
        index = len(self.state.links)
        element.set("href", links.link_placeholder(index))
        if not has_text:
            element.text = links.title_placeholder(index)
        self._link_elements.append((index, element))
        self.state.links.append(LinkRef(kind, target, anchor, has_text, line, col))

    def _check_url(
        self,
        element: etree.Element,
        attribute: str,
        matcher: links.PositionMatcher,
        is_image: bool = False,
    ) -> bool:
        url = element.get(attribute, "")
        scheme = url_scheme_refused(url, is_image=is_image)
        if scheme is None:
            return False
        line, col = matcher.take("url", url)
        if (line, col) == (self.state.body_line, 1):  # the matcher's "not found" fallback
            line, col = _locate(self.state.body, self.state.body_line, url)
        self.state.problems.append(_unsafe_url_problem(line, col, scheme, is_image))
        element.set(attribute, "#")
        return True

    def _check_attributes(self, element: etree.Element) -> None:
        """Refuse attributes Markdown never writes but `{: ...}` (attr_list) could.

        attr_list copies any `key="value"` onto the element: `{: onclick="..."}` would be a
        script, `{: style="..."}` can overlay the page. Names outside ALLOWED_ATTRIBUTES are
        removed with a diagnostic; `href`/`src` on elements other than links and images are
        URL-checked like theirs.
        """
        for name in list(element.attrib):
            value = element.attrib[name]
            if _attribute_allowed(element.tag, name, value):
                if name in ("href", "src") and element.tag not in ("a", "img"):
                    scheme = url_scheme_refused(value)
                    if scheme is not None:
                        line, col = _locate(self.state.body, self.state.body_line, value)
                        self.state.problems.append(_unsafe_url_problem(line, col, scheme, False))
                        element.set(name, "#")
                continue
            del element.attrib[name]
            line, col = _locate(self.state.body, self.state.body_line, f"{name}=", name)
            self.state.problems.append(
                (
                    line,
                    col,
                    f"the HTML attribute '{name}' is not allowed",
                    "attribute lists {: ...} may set id, class, title, alt, width, height and "
                    "lang; event handlers and styles are refused",
                )
            )

    # -- citations --------------------------------------------------------------------
    def _render_citation(
        self,
        element: etree.Element,
        matcher: links.PositionMatcher,
        numbers: dict[str, int],
        uses: dict[str, int],
    ) -> None:
        raw = element.attrib.pop("data-kb-cite")
        first = True
        for item in raw.split("\x1f"):
            key, _, locator = item.partition("\x1e")
            line, col = matcher.take("cite", key)
            self.state.citations.append(CiteRef(key, locator or None, line, col))
            number = numbers.setdefault(key, len(numbers) + 1)
            uses[key] = uses.get(key, 0) + 1
            if not first:
                separator = etree.SubElement(element, "span")
                separator.text = ", "
                separator.set("class", "cite-sep")
            first = False
            anchor = etree.SubElement(element, "a")
            anchor.set("href", f"#ref-{number}")
            anchor.set("id", f"cite-{number}-{uses[key]}")
            anchor.set("class", "cite-link")
            anchor.text = str(number)
            self.state.anchors.add(f"cite-{number}-{uses[key]}")
            if locator:
                span = etree.SubElement(element, "span")
                span.set("class", "cite-locator")
                span.text = markdown.util.AtomicString(f" ({locator})")
        element.set("class", "cite")

    # -- glossary -----------------------------------------------------------------------
    def _mark_glossary(self, element: etree.Element, used: set[str]) -> None:
        """Wrap the first prose use of each term (skipping headings, links, code)."""
        if element.tag in NO_GLOSSARY_TAGS or "toc" in (element.get("class") or "").split():
            return
        if element.text and not isinstance(element.text, markdown.util.AtomicString):
            before, new_elements = self._split_terms(element.text, used)
            if new_elements:
                element.text = before
                for offset, new in enumerate(new_elements):
                    element.insert(offset, new)
        for child in list(element):
            self._mark_glossary(child, used)
            if child.tail and not isinstance(child.tail, markdown.util.AtomicString):
                before, new_elements = self._split_terms(child.tail, used)
                if new_elements:
                    child.tail = before
                    position = list(element).index(child)
                    for offset, new in enumerate(new_elements, start=1):
                        element.insert(position + offset, new)

    def _split_terms(self, text: str, used: set[str]) -> tuple[str, list[etree.Element]]:
        assert self.glossary_re is not None
        created: list[etree.Element] = []
        before = text
        rest = text
        position = 0
        while True:
            match = self.glossary_re.search(rest, position)
            if match is None:
                break
            term_id = self.term_by_form[match[1].lower()]
            if term_id in used:
                position = match.end()
                continue
            used.add(term_id)
            self.state.glossary_used.append(term_id)
            term = self.term_by_id[term_id]
            abbr = etree.Element("abbr")
            abbr.set("class", "term")
            abbr.set("title", term.definition)
            link = etree.SubElement(abbr, "a")
            link.set("href", links.route_placeholder("glossary", term_id))
            link.text = markdown.util.AtomicString(match[1])
            tail = rest[match.end() :]
            if created:
                created[-1].tail = rest[: match.start()]
            else:
                before = rest[: match.start()]
            abbr.tail = tail
            created.append(abbr)
            rest = tail
            position = 0
        return before, created


def _take_space_before(
    element: etree.Element,
    parents: dict[etree.Element, etree.Element],
    previous: dict[etree.Element, etree.Element | None],
) -> None:
    """Move the whitespace written before a citation marker into the marker.

    Search indexes the text without its citation markers (search.EXCLUDE_SELECTORS); a
    space left outside the removed marker gave snippets like "dependence . The". Inside the
    marker it goes with it, and readers see the same line (`.cite` is nowrap, so the number
    also no longer wraps away from its word).
    """
    parent = parents.get(element)
    if parent is None:
        return
    sibling = previous.get(element)  # a map, not list(parent).index: linear in the page
    before = sibling.tail if sibling is not None else parent.text
    if not before or not before[-1].isspace() or isinstance(before, markdown.util.AtomicString):
        return
    kept = before.rstrip()
    if sibling is not None:
        sibling.tail = kept
    else:
        parent.text = kept
    element.text = " " + (element.text or "")


_SENTENCE_SPLIT_RE = re.compile(
    r"(?<=[.!?])\s+(?=" + CONTEXT_MARK + r"*[A-Z0-9\"'(\[])"
)  #: SENTENCE_END_RE with context marks transparent


def _sentences_around(
    elements: Sequence[etree.Element], parents: dict[etree.Element, etree.Element]
) -> list[str]:
    """The sentence containing each element, as plain text (for "Linked from" lists).

    Each block holding one of the elements is walked once, with a mark before every one of
    them, and split into sentences once: a walk per element cost the square of the links
    in a paragraph (8,000 links in one: 30 s).
    """
    blocks: dict[etree.Element, set[etree.Element]] = {}
    for element in elements:
        block = element
        while block.tag not in BLOCK_TAGS and block in parents:
            block = parents[block]
        blocks.setdefault(block, set()).add(element)
    found: dict[etree.Element, str] = {}
    for block, targets in blocks.items():
        order: list[etree.Element] = []
        text = _block_text(block, targets, order)
        marked = iter(order)
        for sentence in _SENTENCE_SPLIT_RE.split(text):
            count = sentence.count(CONTEXT_MARK)
            if not count:
                continue
            sentence = sentence.replace(CONTEXT_MARK, "").strip()
            if len(sentence) > MAX_CONTEXT:
                sentence = sentence[: MAX_CONTEXT - 1].rstrip() + "…"
            for _ in range(count):
                found[next(marked)] = sentence
    return [found.get(element, "") for element in elements]


def _block_text(
    block: etree.Element, targets: set[etree.Element], order: list[etree.Element]
) -> str:
    """The block's text, whitespace collapsed, with CONTEXT_MARK before each target (listed
    in `order` as met); footnote markers and heading permalinks are left out."""
    pieces: list[str] = []

    def walk(node: etree.Element) -> None:
        if node.tag == "sup" or node.get("class") == "headerlink":
            return
        if node in targets:
            pieces.append(CONTEXT_MARK)
            order.append(node)
        if node.text:
            pieces.append(node.text)
        for child in node:
            walk(child)
            if child.tail:
                pieces.append(child.tail)

    walk(block)
    return _SPACE_BEFORE_PUNCT_RE.sub(r"\1", " ".join("".join(pieces).split()))


def _record_raw_html(md: markdown.Markdown, state: _ConversionState) -> None:
    """Note which stash entries the raw-HTML processors make (the stash also holds
    highlighted code and other extensions' HTML, which is kbgen's own, not the author's)."""

    def recording(stock: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any) -> Any:
            first = md.htmlStash.html_counter
            result = stock(*args)
            state.raw_html.extend(range(first, md.htmlStash.html_counter))
            return result

        return run

    block: Any = md.preprocessors["html_block"]
    block.run = recording(block.run)
    inline: Any = md.inlinePatterns["html"]
    inline.handleMatch = recording(inline.handleMatch)


# Elements whose content is raw text up to their end tag: unclosed, they swallow the page.
_RAW_TEXT_TAGS = ("script", "style", "textarea", "title", "xmp", "iframe", "noembed",
                  "noframes", "noscript", "plaintext")
_RAW_OPEN_RE = re.compile(r"<!--|<(" + "|".join(_RAW_TEXT_TAGS) + r")(?=[\s/>])", re.IGNORECASE)
_SINGLE_TAG_RE = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)\b[^<>]*>\Z")


def unclosed_raw_text(fragment: str) -> tuple[int, str] | None:
    """(offset, what) of a comment or raw-text element that the fragment opens and never
    closes: in a browser (or the sanitizer) it would hide everything after it."""
    position = 0
    while found := _RAW_OPEN_RE.search(fragment, position):
        if found.group(1) is None:
            end = fragment.find("-->", found.end() - 2)
            if end < 0:
                return found.start(), "an HTML comment '<!--' that is never closed with '-->'"
            position = end + 3
            continue
        name = found.group(1).lower()
        closing = re.compile(f"</{name}(?=[\\s/>])", re.IGNORECASE).search(fragment, found.end())
        if closing is None:
            return found.start(), f"a <{name}> element that is never closed with </{name}>"
        position = closing.end()
    return None


def sanitize_fragment(fragment: str) -> str:
    """One raw-HTML fragment cleaned with the allowlist, on its own: whatever it holds
    cannot reach beyond it. Inline HTML arrives one tag at a time, so a lone start or
    end tag is cleaned as that tag (nh3 alone would close or drop it)."""
    single = _SINGLE_TAG_RE.match(fragment)
    if single is not None and single.group(1):
        return fragment if single.group(2).lower() in SANITIZE_TAGS else ""
    cleaned = _nh3_clean(fragment)
    if single is not None:
        start = re.match(f"<{single.group(2).lower()}\\b[^>]*>", cleaned)
        return start.group(0) if start else ""
    return cleaned


def _nh3_clean(fragment: str) -> str:
    return nh3.clean(
        fragment,
        tags=set(SANITIZE_TAGS),
        attributes={k: set(v) for k, v in SANITIZE_ATTRIBUTES.items()},
        link_rel=None,
        url_schemes={"http", "https", "mailto"},
    )


class _RawHtmlPostprocessor(Postprocessor):
    """Check, and with `sanitize` clean, each raw-HTML fragment before it goes back in.

    Cleaning the whole page instead let one fragment's unclosed `<!--` or `<script>`
    swallow the rest of the page (and the headings the table of contents links to).
    An unclosed comment or raw-text element is an error at its position, in `allow` mode
    too, where the browser would hide the rest of the page the same way.
    """

    def __init__(self, md: markdown.Markdown, state: _ConversionState, sanitize: bool) -> None:
        super().__init__(md)
        self.state = state
        self.sanitize = sanitize

    def run(self, text: str) -> str:
        state, blocks = self.state, self.md.htmlStash.rawHtmlBlocks
        fragments = [blocks[i] for i in state.raw_html if isinstance(blocks[i], str)]
        state.problems += raw_html_url_problems(fragments, state.body, state.body_line)  # type: ignore[arg-type]
        for index in state.raw_html:
            fragment = blocks[index]
            if not isinstance(fragment, str):
                continue
            # A lone inline tag is closed (or not) by a later one: the browser's business.
            unclosed = None if _SINGLE_TAG_RE.match(fragment) else unclosed_raw_text(fragment)
            if unclosed is not None:
                line, col = _position_of(state.body, state.body_line, fragment, unclosed[0])
                state.problems.append((
                    line,
                    col,
                    f"raw HTML opens {unclosed[1]}; it would hide the rest of the page",
                    "close it, or write it as code (`<!--`) if it is meant to be shown",
                ))
            if self.sanitize:
                blocks[index] = cleaned = sanitize_fragment(fragment)
                if not cleaned.strip():  # nothing left: no empty paragraph around it either
                    placeholder = self.md.htmlStash.get_placeholder(index)
                    text = text.replace(f"<p>{placeholder}</p>", placeholder)
        return text


def _position_of(body: str, body_line: int, fragment: str, offset: int) -> tuple[int, int]:
    """File line and column of `fragment[offset]` (the fragment's start if not found)."""
    start = body.find(fragment)
    if start < 0:
        return _locate(body, body_line, fragment[offset : offset + 20])
    index = start + offset
    line_start = body.rfind("\n", 0, index) + 1
    return body_line + body.count("\n", 0, index), index - line_start + 1


class _KbExtension(Extension):
    def __init__(
        self,
        state: _ConversionState,
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
        md.inlinePatterns.register(_WikiLinkPattern(links.WIKILINK_RE.pattern, md), "kb_wiki", 178)
        md.inlinePatterns.register(
            _CitationPattern(links.CITATION_GROUP_RE.pattern, md), "kb_cite", 177
        )
        # Priority 1: after toc (5) and attr_list (8), so every id is final.
        md.treeprocessors.register(
            _CaptureTreeprocessor(md, self.state, self.glossary, self.options), "kb_capture", 1
        )
        if self.shortcuts:
            state = self.state
            speedups.install(md, lambda: state.body)
        if self.options.raw_html == "escape":
            md.preprocessors.deregister("html_block")
            md.inlinePatterns.deregister("html")
        else:
            _record_raw_html(md, self.state)
            # Before raw_html (30), which puts the stashed fragments back into the page.
            md.postprocessors.register(
                _RawHtmlPostprocessor(md, self.state, self.options.raw_html == "sanitize"),
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
        self._state = _ConversionState()
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
            problem = _recursion_problem(body, body_line)
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


#: link brackets one paragraph may hold when the stock inline processor converts it (its time
#: grows with their square: 2,000 links in one paragraph took 2.4 s, 8,000 took 30 s)
STOCK_BRACKET_LIMIT = 2_000
_PARAGRAPH_BREAK_RE = re.compile(r"\n[ \t]*\n")


def bracket_flood(body: str, body_line: int) -> tuple[int, int, str, str] | None:
    """The first paragraph with more `[` than the stock inline processor converts in bounded
    time, as (line, col, message, hint); None when there is none. Only used when the
    speed-ups (whose inline processor is linear in them) are off."""
    start = 0
    for match in [*_PARAGRAPH_BREAK_RE.finditer(body), None]:
        end = match.start() if match is not None else len(body)
        count = body.count("[", start, end)
        if count > STOCK_BRACKET_LIMIT:
            line = body_line + body.count("\n", 0, start)
            return (
                line,
                1,
                f"this paragraph holds {count:,} '[' brackets; with the stock Markdown "
                f"processors ({speedups.OFF_REASON}) it would take minutes to convert",
                f"split it into paragraphs of at most {STOCK_BRACKET_LIMIT:,} links, or install "
                "the locked Python-Markdown (requirements.lock)",
            )
        if match is not None:
            start = match.end()
    return None


def nesting_problem(body: str, body_line: int) -> tuple[int, int, str, str] | None:
    """Refuse absurdly deep list/quote nesting before Python-Markdown sees it.

    Its list parser is quadratic in depth (200 levels: 0.6 s; 3,000 levels: minutes, then a
    RecursionError), so depth is checked from indentation and '>' markers first.
    """
    for offset, line in enumerate(body.split("\n")):
        stripped = line.lstrip(" \t>")
        prefix = line[: len(line) - len(stripped)]
        quotes = prefix.count(">")
        indent = len(prefix.replace("\t", "    ").replace(">", ""))
        # "* * * * x" nests one list in another on a single line: as costly as indentation
        markers = _leading_markers(line)  # "1. 1. x" too; linear in the line
        if quotes > MAX_QUOTE_DEPTH or indent > MAX_INDENT or markers > MAX_QUOTE_DEPTH:
            levels = max(quotes, indent // 4, markers)  # 4 columns a level
            return (
                body_line + offset,
                1,
                f"lists or blockquotes are nested about {levels} levels deep; at most "
                f"{MAX_QUOTE_DEPTH} are supported",
                "flatten the nesting (use headings or separate lists)",
            )
    return None


_NESTING_MARKER_RE = re.compile(r"[ \t]*(?:>|[-*+](?=[ \t])|\d{1,9}[.)](?=[ \t]))")


def _leading_markers(line: str) -> int:
    """How many list/quote markers open `line`."""
    levels, position = 0, 0
    while match := _NESTING_MARKER_RE.match(line, position):
        levels, position = levels + 1, match.end()
    return levels


def _deepest_nesting(body: str) -> tuple[int, int]:
    """(line offset, levels) of the line with the most leading list/quote markers."""
    deepest = (0, 0)
    for offset, line in enumerate(body.split("\n")):
        levels = _leading_markers(line) + (len(line) - len(line.lstrip(" "))) // 4
        if levels > deepest[1]:
            deepest = (offset, levels)
    return deepest


_INLINE_MARKUP = "*_[]!<>`"


def _recursion_problem(body: str, body_line: int) -> tuple[int, int, str, str]:
    """The problem to report when Python-Markdown ran out of recursion depth: deep list or
    quote nesting if a line has it, else the line densest in inline markup characters."""
    line_offset, levels = _deepest_nesting(body)
    if levels >= 10:
        return (
            body_line + line_offset,
            1,
            f"lists or blockquotes are nested too deeply to convert (about {levels} "
            "levels on this line)",
            "flatten the nesting; a few levels of lists or quotes are plenty",
        )
    lines = body.split("\n")
    counts = [sum(line.count(c) for c in _INLINE_MARKUP) for line in lines]
    densest = max(range(len(lines)), key=counts.__getitem__)
    return (
        body_line + densest,
        1,
        f"Markdown on this line is nested too deeply to convert ({counts[densest]} of the "
        f"characters {' '.join(_INLINE_MARKUP)})",
        "escape literal characters with a backslash (\\*) or put them in `code`",
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
