"""One conversion's scratch space, and where in the source file a piece of the body is.

Input: a page body and the file line it starts on (set by `markup.MarkupEngine.convert`).
Output: `ConversionState`, which the extension's parts (markup_capture.py,
markup_rawhtml.py) fill in while Python-Markdown runs and the engine turns into a `Markup`;
`locate` and `position_of` give a problem's file line and column, since Python-Markdown keeps
no source positions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from kbgen.model import CiteRef, LinkRef

#: a problem found while converting: (line, col, message, hint); load.py makes it a Diagnostic
Problem = tuple[int, int, str, str]


@dataclass
class ConversionState:
    """Per-conversion scratch space shared by our treeprocessor and raw-HTML postprocessor;
    the engine owns one and clears it before every page."""

    body: str = ""
    body_line: int = 1
    links: list[LinkRef] = field(default_factory=list)
    citations: list[CiteRef] = field(default_factory=list)
    anchors: set[str] = field(default_factory=set)
    problems: list[Problem] = field(default_factory=list)
    raw_html: list[int] = field(default_factory=list)  #: stash indices holding raw HTML


def locate(body: str, body_line: int, *needles: str) -> tuple[int, int]:
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


def position_of(body: str, body_line: int, fragment: str, offset: int) -> tuple[int, int]:
    """File line and column of `fragment[offset]` (the fragment's start if not found)."""
    start = body.find(fragment)
    if start < 0:
        return locate(body, body_line, fragment[offset : offset + 20])
    index = start + offset
    line_start = body.rfind("\n", 0, index) + 1
    return body_line + body.count("\n", 0, index), index - line_start + 1
