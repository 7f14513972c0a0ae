"""Bodies Python-Markdown cannot convert in bounded time or stack: refused with a reason.

Input: a page body and the file line it starts on.
Output: a `Problem` (line, col, message, hint) or None. `nesting_problem` refuses list and
quote nesting deeper than MAX_QUOTE_DEPTH before conversion (the list parser is quadratic in
depth); `bracket_flood` refuses a paragraph with more than STOCK_BRACKET_LIMIT `[` when the
stock inline processor runs (the speed-ups off); `recursion_problem` says where the trouble
probably is when Python-Markdown ran out of recursion depth all the same.
"""

from __future__ import annotations

import re

from kbgen import speedups
from kbgen.markup_state import Problem

MAX_QUOTE_DEPTH = 100  #: blockquote levels
MAX_INDENT = 400  #: leading columns (100 list levels of 4 spaces)
#: link brackets one paragraph may hold when the stock inline processor converts it (its time
#: grows with their square: 2,000 links in one paragraph took 2.4 s, 8,000 took 30 s)
STOCK_BRACKET_LIMIT = 2_000
_PARAGRAPH_BREAK_RE = re.compile(r"\n[ \t]*\n")


def bracket_flood(body: str, body_line: int) -> Problem | None:
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


def nesting_problem(body: str, body_line: int) -> Problem | None:
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


def recursion_problem(body: str, body_line: int) -> Problem:
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
