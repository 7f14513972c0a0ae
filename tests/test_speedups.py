"""The Markdown speed-ups (kbgen/speedups.py) give exactly the stock output, and are used only
with the versions they were verified against."""

from __future__ import annotations

import re
import types
import xml.etree.ElementTree as etree
from pathlib import Path

import markdown
import pytest
from markdown.extensions.codehilite import CodeHiliteExtension
from markdown.inlinepatterns import InlineProcessor as InlinePattern
from markdown.treeprocessors import InlineProcessor

from kbgen.config_types import MarkdownOptions
from kbgen.markup import MarkupEngine
from kbgen.model import GlossaryTerm
from kbgen.speedups import FastInlineProcessor, start_strings

REPO = Path(__file__).resolve().parent.parent
GLOSSARY = (GlossaryTerm("term-nmda", "NMDA receptor", "A glutamate receptor.", ()),)

TRICKY = [
    "plain words, no markup at all\n",
    "*em* **strong** ***both*** _u_ __uu__ a*b*c snake_case_word **unclosed\n",
    "escaped \\*stars\\* and \\[brackets\\] and \\`ticks\\` and \\\\ backslash\n",
    "`code with [[wiki]] and *stars*` then ``double `tick` code`` and \\\\`odd`\n",
    "[link](https://e.org) [ref][r] [short] ![img](a.png) ![ref img][r] [[wiki]] "
    "[[wiki|text]] [@key] [see @key, p. 3; @other] [-@key]\n\n[r]: https://r.org\n"
    "[short]: https://s.org\n",
    "<https://auto.link/x> <me@example.org> &amp; &copy; &#169; &#xA9; & alone\n",
    "line ending in two spaces  \nnext line\n",
    "footnote[^1] and [^missing]\n\n[^1]: The note, with *em* and [[wiki]].\n",
    "nested [link with *em* and `code`](x.md) and *em with [link](y.md)*\n",
    "| a | b |\n|---|---|\n| *x* | [[y]] |\n| `z` | &amp; |\n",
    "- item *one*\n- item [[two]]\n    - nested **three**\n",
    "Term\n: definition with _em_\n\n!!! note \"Title *em*\"\n    body [[w]]\n",
    "*[NMDA]: N-methyl-D-aspartate\n\nNMDA receptor text\n",
    "<span>raw</span> a < b > c\n",
    "unicode — “quotes” ñ [[ünï]] *ẽm*\n",
    "# Title\n\n[TOC]\n\n## One {: #first .wide }\n\nText {: .x }\n{: .para }\n\n## Two\n",
    "Mentions `[TOC]` in code\n\n    [TOC]\n\n## Heading\n",
    "```python hl_lines=\"2\"\na = 1\nb = 2\n```\n\n```python\nc = 3\n```\n\n"
    "```{.python linenums=\"1\"}\nd = 4\n```\n\n~~~\nplain\n~~~\n",
    "Setext title\n============\n\nSub title\n---------\n\ntext\n- not a list\n\n***\n\n- - -\n",
    "# Hash #\n\n###### six ######\nnot a heading #tag\n\n> quote\nlazy\n> > nested\n",
    "!!! note \"Title\"\n    First.\n\n    Second, still inside.\n\n    - list\n\n"
    "        deeper\n\nAfter.\n\n!!! warning\n    body\n",
    "Term\n:   one\n:   two\n\n    indented continuation\n\nratio 1: 2 here\n",
    "Text[^n] with *[HTML]: abbr def below\n\n*[HTML]: Hyper Text\n\n[^n]: Note.\n"
    "    more note\n\n[id]: https://e.org \"T\"\nand [x][id]\n",
    "| only | pipes |\n|---|---|\n\na | b\n--|--\nc | d\n\nnot | a table\n",
    # more matches of one pattern in one text than BATCH_AFTER, and bracket runs longer
    # than BRACKET_SCAN: the batched and table-driven paths
    " ".join(["[link](https://e.org) *em* [[wiki]] `c` [@key] ![i](a.png) [x][r] &amp; "
              "**s** <https://a.org> [short] _u_ [^1]"] * 100)
    + "\n\n[r]: https://r.org\n[short]: https://s.org\n[^1]: Note.\n",
    "[" * 300 + "text" + "]" * 150 + "(u) and [a](b) " * 3 + "\n",
    "![" * 200 + " [a](b)" * 100 + " ]" * 50 + "\n",
    "[[" * 100 + "w" + "]]" * 60 + " [x] " * 80 + "\n\n[x]: https://x.org\n",
    "".join(f"[{'[' * (n % 5)}t{']' * (n % 7)}](u{n}) " for n in range(150)) + "\n",
]


def _engines() -> tuple[MarkupEngine, MarkupEngine]:
    """Our engine, and one with every shortcut swapped back for the stock code."""
    fast = MarkupEngine(MarkdownOptions(), GLOSSARY)
    stock = MarkupEngine(MarkdownOptions(), GLOSSARY)
    md = stock._md
    md.treeprocessors.register(InlineProcessor(md), "inline", 20)
    hilite = next(e for e in md.registeredExtensions if isinstance(e, CodeHiliteExtension))
    hilite.setConfig("pygments_formatter", "html")
    md.is_block_level = types.MethodType(markdown.Markdown.is_block_level, md)  # type: ignore[method-assign]
    # The gates are wrappers set on the processor instances; the class methods are stock.
    gated = ("test", "run", "replace_marker")
    processors = [*md.parser.blockprocessors, *md.treeprocessors]
    for processor in processors:
        for method in gated:
            vars(processor).pop(method, None)
    assert isinstance(fast._md.treeprocessors["inline"], FastInlineProcessor)
    assert not isinstance(md.treeprocessors["inline"], FastInlineProcessor)
    blocks, trees = fast._md.parser.blockprocessors, fast._md.treeprocessors
    for found in (blocks["hashheader"], blocks["footnote"], blocks["admonition"],
                  trees["attr_list"], trees["toc"]):
        assert vars(found).keys() & set(gated)
    assert not any(vars(p).keys() & set(gated) for p in processors)
    return fast, stock


def _articles() -> list[str]:
    return [
        path.read_text("utf-8").split("\n---\n", 1)[-1]
        for path in sorted((REPO / "content").rglob("*.md"))
    ]


@pytest.mark.parametrize("body", TRICKY)
def test_same_output_as_the_stock_processor_on_tricky_input(body: str) -> None:
    fast, stock = _engines()
    assert fast.convert(body, 1) == stock.convert(body, 1)


def test_same_output_as_the_stock_processor_on_every_article() -> None:
    fast, stock = _engines()
    articles = _articles()
    assert len(articles) > 20
    for body in articles:
        assert fast.convert(body, 1) == stock.convert(body, 1)


def test_start_strings_of_the_stock_patterns() -> None:
    md = markdown.Markdown(extensions=["footnotes"])
    patterns = {name: md.inlinePatterns[name] for name in
                ("backtick", "escape", "link", "image_link", "entity", "linebreak", "footnote")}
    found = {name: start_strings(p.getCompiledRegExp()) for name, p in patterns.items()}
    assert found["escape"] == {"\\"}
    assert found["link"] == {"["}  # the lookbehind consumes nothing
    assert found["image_link"] == {"!["}
    assert found["entity"] == {"&"}
    assert found["linebreak"] == {"  \n"}
    assert found["footnote"] == {"[^"}
    assert found["backtick"] == {"`", "\\"}  # escaped backslashes before a tick start a match


@pytest.mark.parametrize(
    ("regex", "expected"),
    [
        (r"\[\[x", {"[[x"}),
        (r"(?<!\\)ab|cd", {"ab", "cd"}),
        (r"[*_]+", {"*", "_"}),
        (r"(foo)?bar", None),  # may start with "b": the optional group could be absent
        (r"a*b", None),
        (r".x", None),
        (r"[^x]", None),
        (r"\w+", None),
        (r"(?i)abc", None),  # case-insensitive: "ABC" matches too
        (r"(?i:a)b", None),
        (r"^(.*?)\*(.*)$", None),  # an old-style pattern can start anywhere
        (r"(?=a)", None),  # matches the empty string
        (r"[a-z]", None),  # too many start characters to be worth testing
        (r"(?:\*\*|__)x", {"**", "__"}),
    ],
)
def test_start_strings_are_safe(regex: str, expected: set[str] | None) -> None:
    found = start_strings(re.compile(regex))
    assert (set(found) if found is not None else None) == expected
    if found is not None:  # every match really does start with one of them
        for text in ("[[x", "ab", "cd", "**", "__x", "**x", "_*"):
            for match in re.finditer(regex, text):
                if match.group(0):
                    assert any(text[match.start():].startswith(s) for s in found)


def test_an_extension_pattern_is_always_tried_when_unreadable() -> None:
    class AnyChar(InlinePattern):
        def handleMatch(self, m: re.Match[str], data: str):  # type: ignore[no-untyped-def, override]
            el = etree.Element("mark")
            el.text = m.group(1)
            return el, m.start(0), m.end(0)

    md = markdown.Markdown()
    md.inlinePatterns.register(AnyChar(r"(?i)(z+)", md), "zs", 5)
    md.treeprocessors.register(FastInlineProcessor(md), "inline", 20)
    assert md.convert("buzz ZZ") == "<p>bu<mark>zz</mark> <mark>ZZ</mark></p>"


# -- the version fence ---------------------------------------------------------------------


def test_speedups_are_off_outside_the_verified_versions() -> None:
    from kbgen import speedups

    verified_markdown = (*speedups.VERIFIED_MARKDOWN[0], 0)
    verified_python = (*speedups.VERIFIED_PYTHON[0], 0)
    assert speedups.off_reason(verified_markdown, verified_python) is None
    newer = speedups.off_reason((9, 0, 1), verified_python)
    assert newer is not None and "Python-Markdown 9.0.1" in newer
    python = speedups.off_reason(verified_markdown, (3, 99, 0))
    assert python is not None and "Python 3.99" in python
    # what runs here is a verified pair (the lock pins it); the suite compares both engines
    assert speedups.OFF_REASON is None, speedups.OFF_REASON


def test_an_engine_without_shortcuts_is_the_stock_one_with_the_same_output() -> None:
    from kbgen import speedups

    fast = MarkupEngine(MarkdownOptions(), GLOSSARY)
    stock = MarkupEngine(MarkdownOptions(), GLOSSARY, shortcuts=False)
    assert fast.shortcuts and not stock.shortcuts
    assert isinstance(fast._md, speedups.FastMarkdown)
    assert type(stock._md) is markdown.Markdown
    assert not isinstance(stock._md.treeprocessors["inline"], FastInlineProcessor)
    assert not any(vars(p).keys() & {"test", "run", "replace_marker"}
                   for p in [*stock._md.parser.blockprocessors, *stock._md.treeprocessors])
    for body in [*TRICKY, *_articles()[:12]]:
        assert fast.convert(body, 1) == stock.convert(body, 1)


def test_without_shortcuts_a_paragraph_crowded_with_brackets_is_refused_not_converted() -> None:
    from kbgen.markup_limits import STOCK_BRACKET_LIMIT

    crowded = "Intro.\n\n" + "[x](u) " * (STOCK_BRACKET_LIMIT + 1) + "\n\nAfter.\n"
    stock = MarkupEngine(MarkdownOptions(), GLOSSARY, shortcuts=False)
    markup = stock.convert(crowded, 10)
    assert markup.html == ""
    (line, col, message, hint), = markup.problems
    assert (line, col) == (12, 1) and "2,001 '[' brackets" in message and "split it" in hint
    fast = MarkupEngine(MarkdownOptions(), GLOSSARY)  # linear: converts it
    assert fast.convert(crowded, 10).problems == () and "After." in fast.convert(crowded, 10).html
