"""references.yaml loading and validation (kbgen/citations.py), and citation resolution."""

from __future__ import annotations

from conftest import article, run_build

from kbgen.citations import load_references

GOOD = """\
smith-2020:
  type: trial
  authors: [Smith A, Jones B]
  title: A trial
  journal: J Test
  year: 2020
  doi: 10.1000/xyz.1
  pmid: "12345"
  pmcid: PMC42
label-x:
  type: label
  title: Label X
  publisher: Maker
  url: https://example.org/label
"""


def test_loads_entries_with_identifiers_and_lines() -> None:
    references, problems = load_references(GOOD, "content/references.yaml")
    assert problems == []
    smith = references["smith-2020"]
    assert (smith.authors, smith.container, smith.year, smith.doi, smith.pmid, smith.pmcid,
            smith.line) == (("Smith A", "Jones B"), "J Test", 2020, "10.1000/xyz.1", "12345",
                            "PMC42", 1)
    assert references["label-x"].container == "Maker" and references["label-x"].year is None


def test_malformed_identifiers_name_the_line() -> None:
    text = GOOD.replace("10.1000/xyz.1", "doi:10.1000/xyz.1").replace('"12345"', "12a45")
    _, problems = load_references(text, "content/references.yaml")
    assert [p.format() for p in problems] == [
        "content/references.yaml:7:8: error: malformed DOI 'doi:10.1000/xyz.1' in reference "
        "'smith-2020'\n  hint: a DOI looks like 10.1176/appi.ajp.2013.13030392 (no 'doi:' or "
        "URL prefix)",
        "content/references.yaml:8:9: error: malformed PMID '12a45' in reference 'smith-2020'\n"
        "  hint: a PMID is 1 to 9 digits, e.g. \"23982301\"",
    ]


def test_duplicate_keys_and_unknown_fields() -> None:
    text = GOOD + "smith-2020:\n  title: Again\n  jornal: X\n"
    _, problems = load_references(text, "content/references.yaml")
    messages = [p.format() for p in problems]
    assert messages[0].startswith("content/references.yaml:15:1: error: duplicate key "
                                  "'smith-2020' (first defined on line 1)")


def test_unknown_key_in_page_and_unused_reference(make_site) -> None:
    root = make_site({
        "content/references.yaml": GOOD,
        "content/mechanism/a.md": article("A", "Claim [@smith-2021].", extra="status: contested"),
    })
    result = run_build(root, write=False)
    formatted = [d.format() for d in result.diagnostics]
    assert "content/mechanism/a.md:8:8: error: unknown citation key '@smith-2021'\n" \
        "  hint: did you mean 'smith-2020'?" in formatted
    assert "content/references.yaml:10:1: warning: reference 'label-x' is never cited\n" \
        "  hint: cite it with [@label-x] or remove the entry" in formatted


def test_article_reference_list_links_out_and_back(make_site) -> None:
    from conftest import anchors, read_out

    root = make_site({
        "content/references.yaml": GOOD,
        "content/mechanism/a.md": article("A", "One [@smith-2020]. Two [@label-x; @smith-2020].",
                                          extra="status: contested"),
    })
    assert run_build(root).ok
    links = {h: t for h, t, _ in anchors(read_out(root, "mechanism/a/index.html"))}
    assert links["https://doi.org/10.1000/xyz.1"]
    assert "https://pubmed.ncbi.nlm.nih.gov/12345/" in links
    assert "https://pmc.ncbi.nlm.nih.gov/articles/PMC42/" in links
    assert "#cite-1-1" in links and "#cite-1-2" in links and "#cite-2-1" in links
    bibliography = read_out(root, "bibliography/index.html")
    assert bibliography.count("Cited in") >= 1 and "../mechanism/a/" in bibliography
