"""Which URLs and attributes the Markdown may carry: scripts and styles never reach a page.

Input: a URL (with whether it is an image's `src`), or an element's tag and attribute.
Output: the refused scheme (`javascript`, `data` other than a raster image, ...) or None; whether an
attribute is allowed; the `Problem` reported for a refused URL. The treeprocessor
(markup_capture.py) checks every element with these, the raw-HTML postprocessor
(markup_rawhtml.py) every URL in the author's HTML. The rules: docs/trust-model.md.
"""

from __future__ import annotations

import html
import re

from kbgen import links
from kbgen.markup_state import Problem

# Attributes an element in the Markdown tree may carry: what Python-Markdown and its
# extensions write (toc, footnotes, tables, abbr) plus harmless ones for `{: ...}`. Everything
# else, above all `on*` event handlers and `style`, is refused (see
# markup_capture.CaptureTreeprocessor._check_attributes).
ALLOWED_ATTRIBUTES = frozenset(
    {
        "id", "class", "title", "alt", "href", "src", "width", "height", "lang", "dir", "colspan",
        "rowspan", "align", "scope", "start", "reversed", "role", "loading",
    }
)
_TABLE_ALIGN_RE = re.compile(r"^text-align: (?:left|right|center);?$")


def attribute_allowed(tag: str, name: str, value: str) -> bool:
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


def unsafe_url_problem(line: int, col: int, scheme: str, is_image: bool) -> Problem:
    what = "image" if is_image else "link"
    return (
        line,
        col,
        f"{what} URL with the unsafe scheme '{scheme}:' is not allowed",
        "link to an https:// address or another article; script and data URLs are refused",
    )

