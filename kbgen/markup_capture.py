"""Our part of Python-Markdown: wiki links and citations in, placeholders and checks out.

Input: the Markdown of one page as Python-Markdown parses it; its `ConversionState` (the body
and the file line it starts on); the glossary and the markup options.
Output, in the `ConversionState`: every internal link (its href rewritten to a placeholder,
see links.py, with its file position and the sentence around it), every citation (numbered
by first use, rendered as superscript links to the reference list), every element id (the
page's anchors), and a `Problem` for each refused URL or attribute; in the tree, glossary
terms marked (markup_glossary.py). `[[wikilinks]]` and `[@citations]` are inline patterns;
the rest is one treeprocessor that runs last, when every id is final.
"""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as etree
from collections.abc import Sequence

import markdown
from markdown.inlinepatterns import InlineProcessor
from markdown.treeprocessors import Treeprocessor

from kbgen import links
from kbgen.config_types import MarkdownOptions
from kbgen.markup_context import sentences_around
from kbgen.markup_glossary import GlossaryMarker
from kbgen.markup_state import ConversionState, locate
from kbgen.markup_urls import attribute_allowed, unsafe_url_problem, url_scheme_refused
from kbgen.model import CiteRef, GlossaryTerm, LinkKind, LinkRef


class WikiLinkPattern(InlineProcessor):
    def handleMatch(  # type: ignore[override]
        self, m: re.Match[str], data: str
    ) -> tuple[etree.Element, int, int]:
        parsed = links.parse_wikilink(m.group(1))
        element = etree.Element("a")
        element.set("data-kb-wiki", m.group(1))
        element.text = markdown.util.AtomicString(parsed.text or "")
        return element, m.start(0), m.end(0)


class CitationPattern(InlineProcessor):
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



class CaptureTreeprocessor(Treeprocessor):
    """Runs last: placeholders, anchors, citations, URL safety, glossary terms."""

    def __init__(
        self,
        md: markdown.Markdown,
        state: ConversionState,
        glossary: Sequence[GlossaryTerm],
        options: MarkdownOptions,
    ) -> None:
        super().__init__(md)
        self.state = state
        self.glossary = GlossaryMarker(glossary)
        self.options = options

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
        contexts = sentences_around([element for _, element in self._link_elements], parents)
        for (index, _), context in zip(self._link_elements, contexts, strict=True):
            state.links[index] = dataclasses.replace(state.links[index], context=context)
        self._link_elements.clear()
        if self.options.glossary_tooltips:
            self.glossary.mark(root)

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
            line, col = locate(self.state.body, self.state.body_line, url)
        self.state.problems.append(unsafe_url_problem(line, col, scheme, is_image))
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
            if attribute_allowed(element.tag, name, value):
                if name in ("href", "src") and element.tag not in ("a", "img"):
                    scheme = url_scheme_refused(value)
                    if scheme is not None:
                        line, col = locate(self.state.body, self.state.body_line, value)
                        self.state.problems.append(unsafe_url_problem(line, col, scheme, False))
                        element.set(name, "#")
                continue
            del element.attrib[name]
            line, col = locate(self.state.body, self.state.body_line, f"{name}=", name)
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
