"""kbgen's Python-Markdown speed-ups, fenced: byte-identical output, less work, and used only
with the Python-Markdown and Python versions they were verified against.

Input: a `markdown.Markdown` instance being configured (`install`). Output: the same instance
with a faster inline treeprocessor, block processors and tree walks gated by substring tests,
a block-level memo (`FastMarkdown`) and one Pygments formatter per option set
(`html_formatter`). They rely on Python-Markdown's internals (the name-mangled
`InlineProcessor.__handleInline`, processor method signatures) and on `re._parser`, so
`OFF_REASON` says why they are off when the installed versions are not in `VERIFIED_*`: then
`markup.MarkupEngine` uses the stock processors (same output, slower), `--verbose` says so,
and paragraphs crowded with link brackets are refused, since the stock inline processor
takes time quadratic in them. tests/test_speedups.py compares both engines on every article
and on tricky input.

The inline processor:

Input: the element tree the block parser made (as Python-Markdown's `InlineProcessor` gets it).
Output: the same tree with inline patterns applied, byte-for-byte what the stock processor
makes (tests/test_speedups.py compares the two on the repository's content and on tricky input).

Why: inline processing is the largest single cost of a cold build (~40% of Markdown time).
The stock processor tries every inline pattern (about twenty) on every text node, one method
call and one regex scan each, and looks each pattern up through the registry every time. But
most patterns cannot match most text: a link needs `[`, emphasis needs `*` or `_`, an entity
needs `&`. Here each pattern's regex is analysed once for the characters any match must start
with; a pattern whose start characters are all absent from a text is skipped with a substring
test instead of a regex scan. A pattern the analysis cannot read (an old-style pattern,
case-insensitive, or one that can start with anything) is always tried, as before.
"""

from __future__ import annotations

import bisect
import re
import sys
import xml.etree.ElementTree as etree
from collections.abc import Callable

# The regex parser behind `re` (its deprecated public alias is `sre_parse`); what it returns
# has been stable for many Python versions, and anything unexpected reads as "always try".
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser as sre_parser  # type: ignore[attr-defined]
from typing import Any, Final

import markdown
from markdown import Markdown, util
from markdown.inlinepatterns import LinkInlineProcessor, Pattern
from markdown.treeprocessors import InlineProcessor
from pygments.formatters import HtmlFormatter

#: (major, minor) versions whose output tests/test_speedups.py compared with the stock code
VERIFIED_MARKDOWN: Final = ((3, 11),)
VERIFIED_PYTHON: Final = ((3, 11),)


def off_reason(markdown_version: tuple[int, ...], python_version: tuple[int, ...]) -> str | None:
    """Why the speed-ups must stay off for these versions, or None when they were verified."""
    shown = ", ".join(".".join(map(str, v)) for v in VERIFIED_MARKDOWN)
    if tuple(markdown_version[:2]) not in VERIFIED_MARKDOWN:
        found = ".".join(map(str, markdown_version[:3]))
        return f"Python-Markdown {found} is not a version they were verified with ({shown})"
    if tuple(python_version[:2]) not in VERIFIED_PYTHON:
        found = ".".join(map(str, python_version[:2]))
        pythons = ", ".join(".".join(map(str, v)) for v in VERIFIED_PYTHON)
        return f"Python {found} is not a version they were verified with ({pythons})"
    return None


OFF_REASON: Final = off_reason(
    tuple(int(part) for part in markdown.__version_info__[:3]), tuple(sys.version_info[:3])
)


def status() -> str:
    """One line for `--verbose`."""
    if OFF_REASON is None:
        return f"Markdown speed-ups: on (Python-Markdown {markdown.__version__})"
    return f"Markdown speed-ups: off, stock processors in use: {OFF_REASON}"


def install(md: markdown.Markdown, body: Callable[[], str]) -> None:
    """Put the speed-ups into `md` (built as `FastMarkdown`, with `html_formatter` given to
    codehilite); `body()` is the source being converted."""
    # Same name and priority as the stock inline processor, so it takes its place.
    md.treeprocessors.register(FastInlineProcessor(md), "inline", 20)
    _gate_stock_processors(md, body)


#: more start strings than this are not worth a substring test each
MAX_START_STRINGS = 8
#: after this many matches of one pattern in one text, the rest are collected in one pass
BATCH_AFTER = 64
#: brackets scanned directly before a text's bracket table is built
BRACKET_SCAN = 32

_ZERO_WIDTH = frozenset({sre.AT, sre.ASSERT, sre.ASSERT_NOT})
_REPEATS = frozenset(
    op
    for op in (
        sre.MAX_REPEAT,
        sre.MIN_REPEAT,
        getattr(sre, "POSSESSIVE_REPEAT", None),
    )
    if op is not None
)
_ATOMIC_GROUP = getattr(sre, "ATOMIC_GROUP", None)


def start_strings(regex: re.Pattern[str]) -> frozenset[str] | None:
    """Strings one of which starts every match of `regex`; None if a match could start anyhow.

    None is the safe answer: it means "always try this pattern".
    """
    if regex.flags & re.IGNORECASE:
        return None
    try:
        parsed = sre_parser.parse(regex.pattern, regex.flags)
    except Exception:  # an unreadable regex is simply not optimised
        return None
    found = _first(list(parsed))
    if found is None or not found or len(found) > MAX_START_STRINGS:
        return None
    return frozenset(found)


def _first(items: list[tuple[Any, Any]]) -> set[str] | None:
    """Start strings of a parsed sequence; None when it may start anyhow or be empty."""
    for index, (op, arg) in enumerate(items):
        if op in _ZERO_WIDTH:  # lookarounds and anchors consume nothing; look further
            continue
        if op is sre.LITERAL:  # a run of literals is a prefix every match has: "[[", "  \n"
            prefix = chr(arg)
            for next_op, next_arg in items[index + 1 :]:
                if next_op is not sre.LITERAL:
                    break
                prefix += chr(next_arg)
            return {prefix}
        if op is sre.IN:
            return _class_chars(arg)
        if op is sre.SUBPATTERN:
            _group, add_flags, _del_flags, body = arg
            if add_flags & re.IGNORECASE:
                return None
            return _first(list(body))
        if op is _ATOMIC_GROUP:
            return _first(list(arg))
        if op is sre.BRANCH:
            union: set[str] = set()
            for alternative in arg[1]:
                chars = _first(list(alternative))
                if chars is None:
                    return None
                union |= chars
            return union
        if op in _REPEATS:
            low, _high, body = arg
            return _first(list(body)) if low >= 1 else None
        return None  # ANY, NOT_LITERAL, categories, group references: anything goes
    return None


def _class_chars(members: list[tuple[Any, Any]]) -> set[str] | None:
    chars: set[str] = set()
    for op, arg in members:
        if op is sre.LITERAL:
            chars.add(chr(arg))
        elif op is sre.RANGE and arg[1] - arg[0] < MAX_START_STRINGS:
            chars.update(chr(code) for code in range(arg[0], arg[1] + 1))
        else:  # NEGATE, CATEGORY, big ranges
            return None
    return chars


class FastInlineProcessor(InlineProcessor):
    """`InlineProcessor` that skips patterns whose start strings are not in the text."""

    def __init__(self, md: Markdown) -> None:
        super().__init__(md)
        self._starts_cache: dict[Pattern, tuple[str, ...] | None] = {}

    def run(self, tree: etree.Element, ancestors: list[str] | None = None) -> etree.Element:
        # A snapshot per document: the registry re-checks its sort order on every lookup.
        patterns: list[Pattern] = list(self.inlinePatterns)  # type: ignore[arg-type]
        for pattern in patterns:
            if isinstance(pattern, LinkInlineProcessor) and "getText" not in vars(pattern):
                pattern.getText = BracketMatcher().get_text  # type: ignore[method-assign]
        self._patterns = patterns
        self._start_strings = [self._starts_of(pattern) for pattern in patterns]
        return super().run(tree, ancestors)

    def _starts_of(self, pattern: Pattern) -> tuple[str, ...] | None:
        if pattern not in self._starts_cache:
            # Old-style patterns match from the text's start with `^(.*?)…`: start_strings
            # returns None for them, so they are always tried.
            starts = start_strings(pattern.getCompiledRegExp())
            self._starts_cache[pattern] = None if starts is None else tuple(sorted(starts))
        return self._starts_cache[pattern]

    # Overrides the name-mangled `InlineProcessor.__handleInline`, which the stock `run` and
    # `__applyPattern` call; the loop is the stock one plus the start-character test.
    def _InlineProcessor__handleInline(self, data: str, patternIndex: int = 0) -> str:
        if isinstance(data, util.AtomicString):
            return data
        patterns, start_strings_of = self._patterns, self._start_strings
        apply = self._InlineProcessor__applyPattern  # type: ignore[attr-defined]
        start_index = 0
        count = len(patterns)
        matches = 0
        while patternIndex < count:
            starts = start_strings_of[patternIndex]
            if starts is not None:
                # From start_index: a match cannot begin before it (the stock loop searches
                # from there), and searching the whole text after each of many matches in
                # one paragraph cost the square of their number.
                for start in starts:
                    if data.find(start, start_index) >= 0:
                        break
                else:  # no match possible: what the stock loop gets from a miss
                    patternIndex += 1
                    start_index = 0
                    continue
            pattern = patterns[patternIndex]
            if matches >= BATCH_AFTER:
                data = self._apply_rest(pattern, data, patternIndex, start_index)
                matched, start_index = False, 0
            else:
                data, matched, start_index = apply(pattern, data, patternIndex, start_index)
            if matched:
                matches += 1
            else:
                patternIndex += 1
                matches = 0
        return data

    def _apply_rest(self, pattern: Pattern, data: str, pattern_index: int, position: int) -> str:
        """Every further match of `pattern` in `data`, the text rebuilt once.

        The stock `__applyPattern` handles one match and returns the whole text rebuilt
        around its placeholder, so a text with many matches (50,000 links in a paragraph)
        cost the square of their number in copying. This is the same loop over the same
        matches, made on the text as it was: it differs from the stock result only if a
        pattern looked behind a match into the placeholder before it, which no stock
        pattern's start does. (Old-style patterns never get here: they are not batched.)
        """
        regex = pattern.getCompiledRegExp()
        handler: Any = pattern  # a new-style InlineProcessor: handleMatch(match, data)
        pieces: list[str] = []
        done = 0
        start: int | None = None
        end: int | None = None
        while True:
            for match in regex.finditer(data, position):
                node, start, end = handler.handleMatch(match, data)
                if start is not None and end is not None:
                    break
            else:
                break
            assert start is not None and end is not None
            position = max(end, position + 1)
            if node is None:
                continue
            if not isinstance(node, str) and not isinstance(node.text, util.AtomicString):
                self._inline_children(node, pattern_index)
            stash = self._InlineProcessor__stashNode  # type: ignore[attr-defined]
            pieces += (data[done:start], stash(node, pattern.type()))
            done = end
        pieces.append(data[done:])
        return "".join(pieces)

    def _inline_children(self, node: etree.Element, pattern_index: int) -> None:
        """What the stock `__applyPattern` does to a matched element before stashing it."""
        handle = self._InlineProcessor__handleInline
        for child in [node, *node]:
            if child.text:
                self.ancestors.append(child.tag.lower())
                child.text = handle(child.text, pattern_index + 1)
                self.ancestors.pop()
            if child.tail:
                child.tail = handle(child.tail, pattern_index)


_BRACKET_RE = re.compile(r"[\[\]]")


class BracketMatcher:
    """`LinkInlineProcessor.getText` with the same answers in bounded time.

    The stock method walks from an opening `[` to its matching `]`, character by character,
    and to the end of the text when there is none: every `[` of 16,000 unclosed ones walked
    the rest of the paragraph (31 s). Here a few brackets are scanned directly; past that,
    the text's brackets are matched once, for every starting point, and looked up.
    """

    def __init__(self) -> None:
        self._data: str | None = None
        self._positions: list[int] = []
        self._closing: list[int] = []

    def get_text(self, data: str, index: int) -> tuple[str, int, bool]:
        close = self._close(data, index)
        if close < 0:
            return data[index:], len(data), False
        return data[index:close], close + 1, True

    def _close(self, data: str, index: int) -> int:
        """Where the bracket count, 1 at `index`, first reaches 0; -1 if it never does."""
        if data is self._data:
            return self._looked_up(index)
        count = 1
        for scanned, bracket in enumerate(_BRACKET_RE.finditer(data, index)):
            count += 1 if bracket.group() == "[" else -1
            if count == 0:
                return bracket.start()
            if scanned >= BRACKET_SCAN:
                break
        else:
            return -1
        self._table(data)
        return self._looked_up(index)

    def _looked_up(self, index: int) -> int:
        found = bisect.bisect_left(self._positions, index)
        return self._closing[found] if found < len(self._positions) else -1

    def _table(self, data: str) -> None:
        """For a count starting at each bracket: the `]` where it reaches 0 (or -1)."""
        positions = [bracket.start() for bracket in _BRACKET_RE.finditer(data)]
        before, depth = [], 0  # nesting depth before each bracket
        for position in positions:
            before.append(depth)
            depth += 1 if data[position] == "[" else -1
        closing = [-1] * len(positions)
        first_at: dict[int, int] = {}  # depth after a bracket -> the earliest such bracket
        for number in range(len(positions) - 1, -1, -1):
            after = before[number] + (1 if data[positions[number]] == "[" else -1)
            first_at[after] = positions[number]
            closing[number] = first_at.get(before[number] - 1, -1)
        self._data, self._positions, self._closing = data, positions, closing


# -- shortcuts beside the inline processor --------------------------------------------


class FastMarkdown(markdown.Markdown):
    """Python-Markdown with block-level tags looked up in a dict, not a list.

    `is_block_level` scans a list of ~50 tags and is called a few hundred times a page.
    """

    def __init__(self, **kwargs: Any) -> None:
        self._block_level: dict[str, bool] = {}
        super().__init__(**kwargs)

    def convert(self, source: str) -> str:
        self._block_level = {}  # emptied each time: extensions may add tags
        return super().convert(source)

    def is_block_level(self, tag: object) -> bool:
        if not isinstance(tag, str):
            return False
        known = self._block_level.get(tag)
        if known is None:
            known = self._block_level[tag] = super().is_block_level(tag)
        return known


_FORMATTERS: dict[tuple[tuple[str, str], ...], HtmlFormatter[str]] = {}


def html_formatter(lang_str: str = "", **options: Any) -> HtmlFormatter[str]:
    """The Pygments formatter codehilite would build, made once per set of options.

    Building one renders its style sheet, ~0.2 ms per code block; a formatter keeps no
    state between blocks. `lang_str` is what codehilite passes to custom formatters; the
    stock HTML formatter it would otherwise use does not take it.
    """
    key = tuple(sorted((name, repr(value)) for name, value in options.items()))
    formatter = _FORMATTERS.get(key)
    if formatter is None:
        formatter = _FORMATTERS[key] = HtmlFormatter(**options)
    return formatter


def _skip_unless(
    processor: object, method: str, may_act: Callable[..., bool], otherwise: object
) -> None:
    """Wrap `processor.method`, on the instance, to run only when `may_act(*its args)`;
    otherwise it returns `otherwise`, what the stock method returns when it finds nothing.

    Python-Markdown runs several stock processors over text they almost never act on: its
    block parser asks each block processor about each block (a plain paragraph was searched
    by regex about fifteen times), attr_list walks every element for `{...}`, the toc
    extension joins the text of every element looking for a `[TOC]` paragraph. Each can
    only act when its input holds a string its regex cannot match without, and a substring
    test gives the same answer far faster. The processors stay registered as they are (an
    extension may look one up by name and type).
    """
    stock = getattr(processor, method)

    def gated(*args: Any) -> Any:
        return stock(*args) if may_act(*args) else otherwise

    setattr(processor, method, gated)


def _holds(*triggers: str) -> Callable[[str], bool]:
    if len(triggers) == 1:
        trigger = triggers[0]
        return lambda text: trigger in text
    return lambda text: any(trigger in text for trigger in triggers)


# Block processors that can only act on a block holding one of these strings (read off
# their regexes and code in Python-Markdown 3.x): "test" ones return False without it,
# "run" ones (whose test is always True) leave the block as it was and return False.
_BLOCK_GATES: dict[str, tuple[str, tuple[str, ...]]] = {
    "hashheader": ("test", ("#",)),
    "setextheader": ("test", ("\n=", "\n-")),
    "quote": ("test", (">",)),
    "table": ("test", ("|",)),
    "deflist": ("test", (": ",)),
    "reference": ("run", ("]:",)),
    "footnote": ("run", ("[^",)),
    "abbr": ("run", ("*[",)),
}


def _gate_stock_processors(md: markdown.Markdown, body: Callable[[], str]) -> None:
    """Skip stock processors on input they cannot act on (see `_skip_unless`)."""
    blocks = md.parser.blockprocessors
    for name, (method, triggers) in _BLOCK_GATES.items():
        if name in blocks:
            holds = _holds(*triggers)
            if method == "test":
                _skip_unless(blocks[name], "test", lambda _, block, h=holds: h(block), False)
            else:
                _skip_unless(blocks[name], "run", lambda _, pending, h=holds: h(pending[0]), False)
    if "admonition" in blocks:
        # An admonition starts with `!!!`; an indented block may continue the one before.
        admonition: Any = blocks["admonition"]
        indent = " " * admonition.tab_length
        _skip_unless(
            admonition,
            "test",
            lambda _, block: "!!!" in block
            or block.startswith(indent)
            or admonition.current_sibling is not None,
            False,
        )
    trees = md.treeprocessors
    if "attr_list" in trees:
        _skip_unless(trees["attr_list"], "run", lambda _: "{" in body(), None)
    if "toc" in trees:
        toc: Any = trees["toc"]
        _skip_unless(toc, "replace_marker", lambda *_: toc.marker in body(), None)
