"""Link syntax, source positions, placeholders and relative URLs.

Python-Markdown knows nothing of source positions, and its output should depend only on the
page's own bytes (so a cached conversion stays valid when other pages change). So:

* `scan_positions` finds every link and citation in the raw body (skipping code) with its
  line and column; the Markdown stage matches them, in order, to the links it sees.
* Internal links are written into the HTML as placeholders (`\\x1aL3\\x1a` for the URL of
  link 3, `\\x1aT3\\x1a` for its target's title, `\\x1aP<route>#frag\\x1a` for a site route);
  `substitute` swaps in relative URLs and titles at render time, when all pages are known.
* `relative_url` makes every internal URL relative, so the site works under any sub-path and
  (with `directory_urls: false`) from `file://`.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass

MARK = "\x1a"  # ASCII SUB: never valid in user text (the loader rejects control characters)
PLACEHOLDER_RE = re.compile("\x1a([LTP])([^\x1a]*)\x1a")

WIKILINK_RE = re.compile(r"\[\[([^\[\]\n]+?)\]\]")
CITATION_GROUP_RE = re.compile(r"\[(-?@[^\[\]\n]*)\]")
CITATION_ITEM_RE = re.compile(
    r"^\s*@(?P<key>[A-Za-z0-9_][A-Za-z0-9_:.#$%&+?<>~/-]*?)\s*(?:,\s*(?P<loc>[^;]+?))?\s*$"
)
_INLINE_LINK_RE = re.compile(
    r"\]\(\s*<?((?:[^()\s<>]|\([^()\s<>]*\))+)>?(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
_REFERENCE_DEF_RE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)")
_FENCE_RE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_CODE_SPAN_RE = re.compile(r"(`+)(?:.+?)\1", re.S)
SCHEME_RE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9+.-]*):")
UNSAFE_SCHEMES = frozenset({"javascript", "vbscript", "data", "file"})


@dataclass(frozen=True, slots=True)
class WikiTarget:
    target: str
    anchor: str | None
    text: str | None


@dataclass(frozen=True, slots=True)
class ScannedRef:
    kind: str  #: "wiki" | "url" | "cite"
    raw: str  #: wiki inner text, the URL as written, or the citation key
    line: int
    col: int


def parse_wikilink(inner: str) -> WikiTarget:
    """`slug#anchor|text` -> its parts (text and anchor optional)."""
    target, _, text = inner.partition("|")
    target, _, anchor = target.partition("#")
    return WikiTarget(
        " ".join(target.split()), anchor.strip() or None, " ".join(text.split()) or None
    )


def parse_citation_group(inner: str) -> list[tuple[str, str | None]] | None:
    """`@a; @b, p. 12` -> [(a, None), (b, "p. 12")]; None if it is not a citation."""
    items = []
    for part in inner.split(";"):
        match = CITATION_ITEM_RE.match(part)
        if match is None:
            return None
        items.append((match["key"], match["loc"].strip() if match["loc"] else None))
    return items


def is_internal_markdown_link(href: str) -> bool:
    """A relative link to another Markdown source: `../x/page.md#anchor`."""
    if SCHEME_RE.match(href) or href.startswith(("/", "#", "//")):
        return False
    path = href.split("#", 1)[0].split("?", 1)[0]
    return path.endswith(".md")


def unsafe_scheme(url: str, is_image: bool = False) -> str | None:
    """The scheme of a URL that must never reach a reader's browser, else None."""
    if url.isascii() and url.isprintable():  # the usual case; in printable ASCII only " "
        cleaned = url.replace(" ", "")  # is whitespace, so this equals the loop below
    else:
        cleaned = "".join(ch for ch in url if ch.isprintable() and not ch.isspace())
    match = SCHEME_RE.match(cleaned)
    if match is None:
        return None
    scheme = match[1].lower()
    if (
        scheme == "data"
        and is_image
        and cleaned[5:].lower().startswith("image/")
        and not cleaned[5:].lower().startswith("image/svg")
    ):
        return None
    return scheme if scheme in UNSAFE_SCHEMES else None


def scan_positions(body: str, body_line: int) -> list[ScannedRef]:
    """Every wikilink, URL and citation in the body, with file line and 1-based column.

    Fenced code blocks and inline code spans are skipped, as Markdown does.
    """
    found: list[ScannedRef] = []
    fence: str | None = None
    for offset, line in enumerate(body.split("\n")):
        file_line = body_line + offset
        fence_match = _FENCE_RE.match(line)
        if fence is not None:
            if fence_match and fence_match[1][0] == fence[0] and len(fence_match[1]) >= len(fence):
                fence = None
            continue
        if fence_match:
            fence = fence_match[1]
            continue
        if "[" not in line and "]" not in line:  # most lines: every pattern needs one
            continue
        visible = _CODE_SPAN_RE.sub(_blank, line) if "`" in line else line
        for match in WIKILINK_RE.finditer(visible):
            found.append(ScannedRef("wiki", match[1], file_line, match.start() + 1))
        for match in CITATION_GROUP_RE.finditer(visible):
            start = match.start(1)
            for part in match[1].split(";"):
                item = CITATION_ITEM_RE.match(part)
                if item is not None:
                    col = start + part.index("@") + 1
                    found.append(ScannedRef("cite", item["key"], file_line, col))
                start += len(part) + 1
        for match in _INLINE_LINK_RE.finditer(visible):
            found.append(ScannedRef("url", match[1], file_line, match.start(1) + 1))
        definition = _REFERENCE_DEF_RE.match(visible)
        if definition:
            found.append(ScannedRef("url", definition[1], file_line, definition.start(1) + 1))
    return found


def _blank(match: re.Match[str]) -> str:
    return " " * len(match[0])


class PositionMatcher:
    """Hands out scanned positions to links in document order (first unused occurrence)."""

    def __init__(self, scanned: list[ScannedRef], fallback_line: int) -> None:
        self._by_key: dict[tuple[str, str], list[ScannedRef]] = {}
        for ref in scanned:
            self._by_key.setdefault((ref.kind, ref.raw), []).append(ref)
        self._fallback = fallback_line

    def take(self, kind: str, raw: str) -> tuple[int, int]:
        queue = self._by_key.get((kind, raw))
        if queue:
            ref = queue.pop(0)
            return ref.line, ref.col
        return self._fallback, 1


# -- placeholders ----------------------------------------------------------------------


def link_placeholder(index: int) -> str:
    return f"{MARK}L{index}{MARK}"


def title_placeholder(index: int) -> str:
    return f"{MARK}T{index}{MARK}"


def route_placeholder(route: str, fragment: str = "") -> str:
    return f"{MARK}P{route}#{fragment}{MARK}" if fragment else f"{MARK}P{route}{MARK}"


def substitute(text: str, replace: Callable[[str, str], str]) -> str:
    """Replace every placeholder via `replace(kind, payload)`; kind is L, T or P."""
    if MARK not in text:
        return text
    return PLACEHOLDER_RE.sub(lambda m: replace(m[1], m[2]), text)


def strip_placeholders(text: str) -> str:
    return PLACEHOLDER_RE.sub("", text)


# -- URLs --------------------------------------------------------------------------------


def relative_url(from_file: str, to_file: str, directory_urls: bool) -> str:
    """URL of output file `to_file` as seen from output file `from_file`."""
    rel = _relative_path(to_file, from_file)
    if directory_urls and (rel == "index.html" or rel.endswith("/index.html")):
        rel = rel[: -len("index.html")] or "./"
    return rel


def _relative_path(to_file: str, from_file: str) -> str:
    """posixpath.relpath(to_file, dirname(from_file)) for clean relative paths, by string
    operations: this runs for every link on every page, and relpath (which makes both paths
    absolute against the working directory) was a third of all rendering time."""
    from_parts = from_file.split("/")[:-1]
    to_parts = to_file.split("/")
    if "" in to_parts or "" in from_parts or {".", ".."} & {*to_parts, *from_parts}:
        return posixpath.relpath(to_file, posixpath.dirname(from_file) or ".")
    common = 0
    limit = min(len(from_parts), len(to_parts))
    while common < limit and from_parts[common] == to_parts[common]:
        common += 1
    return "/".join([".."] * (len(from_parts) - common) + to_parts[common:]) or "."


def resolve_relative_path(from_rel: str, href_path: str) -> str | None:
    """Content-relative path of a relative `.md` link, or None if it leaves content/."""
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(from_rel), href_path))
    if joined.startswith("../") or joined == "..":
        return None
    return joined
