"""glossary.yaml loading (kbgen/glossary.py) and the glossary page."""

from __future__ import annotations

from conftest import anchors, article, read_out, run_build

from kbgen.glossary import load_glossary, term_id

GLOSSARY = """\
- term: NMDA receptor
  definition: A glutamate-gated ion channel.
  aliases: [NMDA receptors]
  article: a
- term: Bioavailability
  definition: The fraction that reaches the circulation.
"""


def test_loads_terms_with_stable_ids() -> None:
    terms, problems = load_glossary(GLOSSARY, "content/glossary.yaml")
    assert problems == []
    assert [(t.id, t.term, t.aliases, t.article) for t in terms] == [
        ("term-nmda-receptor", "NMDA receptor", ("NMDA receptors",), "a"),
        ("term-bioavailability", "Bioavailability", (), None)]
    assert term_id("(2R,6R)-HNK") == "term-2r-6r-hnk"


def test_duplicate_terms_and_aliases_case_insensitive() -> None:
    text = GLOSSARY + "- term: nmda Receptors\n  definition: again\n"
    _, problems = load_glossary(text, "content/glossary.yaml")
    assert [p.format() for p in problems] == [
        "content/glossary.yaml:7:9: error: duplicate glossary term 'nmda Receptors' (already "
        "used by 'NMDA receptor' on line 1)\n  hint: merge the two entries or remove the alias"]


def test_glossary_article_must_exist_and_page_has_anchors(make_site) -> None:
    root = make_site({
        "content/glossary.yaml": GLOSSARY.replace("article: a", "article: b"),
        "content/mechanism/a.md": article("A", "The NMDA receptor [[a]].",
                                          extra="status: contested"),
    })
    result = run_build(root, write=False)
    assert [d.format() for d in result.diagnostics if d.is_error] == [
        "content/glossary.yaml:1:1: error: glossary term 'NMDA receptor' points to unknown "
        "article 'b'\n  hint: use an article slug"]
    (root / "content/glossary.yaml").write_text(GLOSSARY)
    assert run_build(root).ok
    page = read_out(root, "glossary/index.html")
    assert 'id="term-nmda-receptor"' in page and 'id="term-bioavailability"' in page
    article_links = [(h, t) for h, t, _ in anchors(read_out(root, "mechanism/a/index.html"))]
    assert ("../../glossary/#term-nmda-receptor", "NMDA receptor") in article_links
