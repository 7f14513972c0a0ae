"""Glossary terms in prose: the first use of each on a page links to its glossary entry.

Input: the site's glossary (`GlossaryTerm`s: a term, its aliases, its definition) and the
element tree of one converted page.
Output: the tree with the first prose use of each term (matched whole-word, ignoring case, the
longest form first) wrapped in `<abbr class="term" title="definition">` around a link to the
term's glossary entry (a route placeholder, see links.py). Headings, links, code, table
headers and the table of contents are left alone. `markdown.glossary_tooltips: false` turns
it off (markup_capture.py).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as etree
from collections.abc import Sequence

import markdown

from kbgen import links
from kbgen.model import GlossaryTerm

#: elements whose text is never marked: headings, links, code and what is already markup
NO_GLOSSARY_TAGS = frozenset(
    {
        "h1", "h2", "h3", "h4", "h5", "h6", "a", "code", "pre", "abbr", "sup", "dfn", "script",
        "style", "kbd", "samp", "th",
    }
)


class GlossaryMarker:
    """The glossary's forms as one pattern; build one per engine, mark each page with it."""

    def __init__(self, glossary: Sequence[GlossaryTerm]) -> None:
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

    def mark(self, root: etree.Element) -> None:
        """Mark the first prose use of each term in the page `root`."""
        if self.glossary_re is not None:
            self._mark(root, set())

    def _mark(self, element: etree.Element, used: set[str]) -> None:
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
            self._mark(child, used)
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

