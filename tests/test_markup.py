"""Markdown -> Markup (kbgen/markup.py): placeholders, anchors, citations, glossary, escaping."""

from __future__ import annotations

import re

from kbgen.config_types import MarkdownOptions
from kbgen.markup import MarkupEngine, pygments_css
from kbgen.model import GlossaryTerm

GLOSSARY = (GlossaryTerm("term-nmda-receptor", "NMDA receptor", "A glutamate receptor.",
                         ("NMDA receptors",)),)


def convert(body: str, **options: object) -> object:
    return MarkupEngine(MarkdownOptions(**options), GLOSSARY).convert(body, 10)  # type: ignore[arg-type]


def test_wikilinks_become_placeholders_with_positions_and_context() -> None:
    markup = convert("First sentence. Then see [[alpha]] and [[beta|Beta text]] here.\n")
    assert '<a href="\x1aL0\x1a">\x1aT0\x1a</a>' in markup.html
    assert '<a href="\x1aL1\x1a">Beta text</a>' in markup.html
    first, second = markup.links
    assert (first.kind, first.target, first.line, first.col, first.has_text) == \
        ("wiki", "alpha", 10, 26, False)
    assert (second.target, second.has_text, second.col) == ("beta", True, 40)
    assert first.context == "Then see \x1aT0\x1a and Beta text here."
    assert second.context == first.context  # the later link's text is in the sentence too


def test_markdown_links_to_md_files_and_same_page_anchors() -> None:
    markup = convert("## Part one\n\n[a](../s/x.md#part) [b](#part-one) [c](https://e.org/x.md)\n")
    kinds = [(link.kind, link.target, link.anchor) for link in markup.links]
    assert kinds == [("md", "../s/x.md", "part"), ("anchor", "", "part-one")]
    assert 'href="https://e.org/x.md"' in markup.html
    assert "part-one" in markup.anchors


def test_links_in_code_are_not_links() -> None:
    markup = convert("`[[a]]`\n\n```\n[[b]] [@c]\n```\n")
    assert markup.links == () and markup.citations == ()


def test_citations_numbered_by_first_use_with_backlink_ids() -> None:
    markup = convert("One [@b]. Two [@a; @b, p. 12]. Three [@a].\n")
    assert [(c.key, c.locator) for c in markup.citations] == [
        ("b", None), ("a", None), ("b", "p. 12"), ("a", None)]
    html = markup.html
    assert '<a class="cite-link" href="#ref-1" id="cite-1-1">1</a>' in html
    assert '<a class="cite-link" href="#ref-2" id="cite-2-1">2</a>' in html
    assert 'id="cite-1-2"' in html and 'id="cite-2-2"' in html
    assert "<span class=\"cite-locator\"> (p. 12)</span>" in html
    assert [(c.line, c.col) for c in markup.citations][:2] == [(10, 6), (10, 16)]


def test_space_before_a_citation_marker_goes_inside_it() -> None:
    # Search drops the markers; a space left outside them gave "dependence . The".
    html = convert("Dependence [@a]. Then [[x]] [@b], and\n[@a; @b] at a line start.\n").html
    assert "Dependence<sup class=\"cite\"> <a" in html
    assert '</a><sup class="cite"> <a' in html  # after an element: its tail loses the space
    without_markers = re.sub(r"<sup class=\"cite\">.*?</sup>", "", html)
    assert re.search(r"\s[.,;:]", without_markers) is None, without_markers


def test_glossary_marks_first_prose_use_only() -> None:
    markup = convert("## NMDA receptor\n\nThe NMDA receptors open. An NMDA receptor again.\n\n"
                     "`NMDA receptor` in code.\n")
    assert markup.html.count('<abbr class="term"') == 1
    assert '<abbr class="term" title="A glutamate receptor."><a href="\x1aPglossary#' \
        'term-nmda-receptor\x1a">NMDA receptors</a></abbr>' in markup.html
    assert "<h2" in markup.html and "<abbr" not in markup.html.split("</h2>")[0]
    off = convert("The NMDA receptor.\n", glossary_tooltips=False)
    assert "<abbr" not in off.html


def test_raw_html_is_escaped_by_default_and_sanitized_on_request() -> None:
    hostile = '<script>alert(1)</script>\n\n<p onclick="x()">hi <b>bold</b></p>\n'
    escaped = convert(hostile).html
    assert "<script>" not in escaped and "&lt;script&gt;" in escaped
    sanitized = convert(hostile, raw_html="sanitize").html
    assert "<script" not in sanitized and "onclick" not in sanitized and "<b>bold</b>" in sanitized
    allowed = convert(hostile, raw_html="allow").html
    assert "<script>alert(1)</script>" in allowed


def test_unsafe_urls_are_reported_not_silently_kept() -> None:
    markup = convert("[x](javascript:alert(1)) ![i](data:text/html,hi)\n")
    assert len(markup.problems) == 2
    line, col, message, hint = markup.problems[0]
    assert (line, col) == (10, 5) and "unsafe scheme 'javascript:'" in message and hint
    assert "javascript:" not in markup.html


def test_toc_headings_and_anchor_ids() -> None:
    markup = convert("## First part\n\ntext\n\n### Sub & more\n\n#### Too deep\n")
    assert [(h.level, h.id, h.text) for h in markup.toc] == [
        (2, "first-part", "First part"), (3, "sub-more", "Sub & more")]
    assert {"first-part", "sub-more", "too-deep"} <= markup.anchors


def test_deep_nesting_is_refused_quickly_with_a_position() -> None:
    quotes = convert("Intro.\n\n" + "> " * 10_000 + "deep\n")
    assert quotes.problems[0][:2] == (12, 1)
    assert "nested about 10000 levels deep" in quotes.problems[0][2]
    lists = convert("".join("    " * i + "- item\n" for i in range(10_000)))
    assert lists.problems and "levels deep" in lists.problems[0][2]
    fine = convert("".join("    " * i + "- item\n" for i in range(20)))
    assert fine.problems == () and fine.html.count("<li>") == 20


def test_pygments_css_has_light_and_dark() -> None:
    css = pygments_css()
    assert ".highlight" in css and "[data-theme='dark'] .highlight" in css
    assert "prefers-color-scheme: dark" in css


def test_heading_ids_never_take_an_id_the_page_template_uses() -> None:
    markup = convert("## Main\n\nText.\n\n## Site nav\n\nText.\n\n## Search q\n\n## Main\n")
    ids = [heading.id for heading in markup.toc]
    assert ids == ["main_1", "site-nav_1", "search-q_1", "main_2"]
    assert 'id="main"' not in markup.html


def test_reserved_ids_cover_every_literal_id_in_the_shipped_templates() -> None:
    import re
    from pathlib import Path

    from conftest import REPO

    from kbgen.markup import RESERVED_IDS

    found = {match for path in Path(REPO, "templates").rglob("*.html")
             for match in re.findall(r'\bid="([^"{}]+)"', path.read_text("utf-8"))}
    assert found and found <= RESERVED_IDS, found - RESERVED_IDS


def test_list_markers_nested_on_one_line_are_refused_with_their_count() -> None:
    markup = convert("Intro.\n\n" + "* " * 5000 + "x\n")
    (problem,) = markup.problems
    assert problem[0] == 12 and "nested about 5000 levels deep" in problem[2]


def test_a_recursion_limit_outside_lists_names_the_densest_line_not_zero_levels(
    monkeypatch,
) -> None:
    engine = MarkupEngine(MarkdownOptions(), GLOSSARY)

    def too_deep(text: str) -> str:
        raise RecursionError

    monkeypatch.setattr(engine._md, "convert", too_deep)
    (problem,) = engine.convert("Intro.\n\n" + "*" * 1000 + "x\n", 10).problems
    assert problem[0] == 12 and "about 0 levels" not in problem[2]
    assert "nested too deeply to convert (1000 of the characters" in problem[2]
