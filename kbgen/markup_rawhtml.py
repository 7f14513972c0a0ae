"""The author's raw HTML (`raw_html: sanitize`, `allow`), checked and cleaned per fragment.

Input: the HTML fragments Python-Markdown stashes from the body (block and inline), as
`record_raw_html` notes them in the `ConversionState`.
Output: with `sanitize`, each fragment cleaned by nh3 with the allowlist below (on its own, so
an unclosed `<!--` or `<script>` cannot swallow the rest of the page); in either mode, a
`Problem` for every unsafe URL and for every comment or raw-text element that is never
closed. With `raw_html: escape` (the default) none of this runs: markup.py removes
Python-Markdown's raw-HTML processors instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from html.parser import HTMLParser
from typing import Any

import markdown
import nh3
from markdown.postprocessors import Postprocessor

from kbgen.markup_state import ConversionState, locate, position_of
from kbgen.markup_urls import unsafe_url_problem, url_scheme_refused

# The allowlist for `raw_html: sanitize` (documented in docs/trust-model.md).
SANITIZE_TAGS = frozenset(
    {
        "a", "abbr", "b", "blockquote", "br", "caption", "cite", "code", "col", "colgroup", "dd",
        "del", "details", "dfn", "div", "dl", "dt", "em", "figcaption", "figure", "h2", "h3", "h4",
        "h5", "h6", "hr", "i", "img", "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "s",
        "samp", "small", "span", "strong", "sub", "summary", "sup", "table", "tbody", "td",
        "tfoot", "th", "thead", "tr", "u", "ul", "var",
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
_URL_ATTRIBUTES = frozenset(
    {"href", "src", "action", "formaction", "xlink:href", "poster", "background", "cite", "data"}
)


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
                offset_line, col = locate(fragment, 0, value, f"{name}=")
                line_start = body.rfind("\n", 0, start) + 1
                line = body_line + body.count("\n", 0, start) + offset_line
                col += start - line_start if offset_line == 0 else 0
            else:
                line, col = locate(body, body_line, value, f"{name}=")
            problems.append(unsafe_url_problem(line, col, scheme, is_image))
    return problems


def record_raw_html(md: markdown.Markdown, state: ConversionState) -> None:
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


class RawHtmlPostprocessor(Postprocessor):
    """Check, and with `sanitize` clean, each raw-HTML fragment before it goes back in.

    Cleaning the whole page instead let one fragment's unclosed `<!--` or `<script>`
    swallow the rest of the page (and the headings the table of contents links to).
    An unclosed comment or raw-text element is an error at its position, in `allow` mode
    too, where the browser would hide the rest of the page the same way.
    """

    def __init__(self, md: markdown.Markdown, state: ConversionState, sanitize: bool) -> None:
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
                line, col = position_of(state.body, state.body_line, fragment, unclosed[0])
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

