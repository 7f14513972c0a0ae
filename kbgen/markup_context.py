"""The sentence around each internal link: the context "Linked from" lists show.

Input: the link elements of one converted page (in Python-Markdown's element tree) and a map
from each element to its parent.
Output: for each link, the plain-text sentence that holds it (footnote markers and heading
permalinks left out, at most MAX_CONTEXT characters), in the order the links were given.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as etree
from collections.abc import Sequence

#: the elements whose text is split into sentences (a link's context never crosses them)
BLOCK_TAGS = frozenset(
    {
        "p", "li", "td", "th", "dd", "dt", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6",
        "figcaption", "caption",
    }
)
CONTEXT_MARK = "\x00"  #: put before each link while a block's text is split into sentences
_SPACE_BEFORE_PUNCT_RE = re.compile(r"\s+([.,;:!?)])")
MAX_CONTEXT = 280
#: a sentence ends at . ! or ? before a capital, digit, quote or bracket (context marks
#: between them are transparent)
_SENTENCE_SPLIT_RE = re.compile(r"(?<=[.!?])\s+(?=" + CONTEXT_MARK + r"*[A-Z0-9\"'(\[])")


def sentences_around(
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
