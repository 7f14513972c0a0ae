"""The repository's knowledge base meets the editorial rules (issue: the knowledge base itself).

These run the real engine over content/ (no output written) and assert the counts and the
graph properties the editors promised: enough articles per section, >= 2 distinct citations
and >= 3 links to other articles per article, no orphans, every reference cited, and every
row of the fact base's corrections table answered in the misconceptions article.
"""

from __future__ import annotations

import re

import pytest
from conftest import REPO, TODAY

from kbgen.incremental import Builder
from kbgen.pipeline import BuildOptions
from kbgen.resolve import SiteIndex

MINIMUM_ARTICLES = {"mechanism": 7, "indications": 8, "administration": 7,
                    "side-effects": 9, "safety": 3, "evidence": 2}
REQUIRED_SLUGS = {
    "evidence": {"key-trials", "common-misconceptions"},
    "administration": {"intravenous", "intramuscular", "intranasal-esketamine",
                       "intranasal-racemic", "oral", "sublingual-buccal", "subcutaneous"},
}
# One pattern per row of the corrections table in the fact base (shared/ketamine-facts.md §11),
# matched against the misconceptions article's section headings, in order.
CORRECTIONS = [
    r"FDA-approved for depression, anxiety and chronic pain", r"not FDA-approved for depression",
    r"opioid", r"weeks or months", r"anxiety and PTSD", r"fibromyalgia.*migraine",
    r"suicidal", r"NMDA receptor.*glutamate", r"neuroinflammation.*rewire",
    r"[Dd]issociation is essential", r"[Ss]ide effects are minimal", r"proven",
    r"45 minutes", r"1960s", r"[Oo]ral, nasal, intravenous and intramuscular",
    r"psychotherapy", r"psychedelic", r"endorsements",
]


@pytest.fixture(scope="module")
def site_index() -> SiteIndex:
    builder = Builder(REPO / "config.yaml", BuildOptions(write=False, strict=True, today=TODAY))
    result = builder.build()
    assert result.ok, "\n".join(d.format() for d in result.diagnostics)
    assert builder.index is not None
    return builder.index


def articles(index: SiteIndex) -> dict[str, object]:
    return {k: p for k, p in index.pages.items() if p.kind == "article"}


def test_check_strict_passes_on_repository_content() -> None:
    result = Builder(REPO / "config.yaml",
                     BuildOptions(write=False, strict=True, today=TODAY)).build()
    assert result.diagnostics == []


def test_section_article_counts(site_index: SiteIndex) -> None:
    for section, minimum in MINIMUM_ARTICLES.items():
        slugs = site_index.articles_by_section.get(section, ())
        assert len(slugs) >= minimum, (section, slugs)
    for section, required in REQUIRED_SLUGS.items():
        assert required <= set(site_index.articles_by_section[section])
    assert len(site_index.glossary) >= 35
    assert sum(len(v) for v in site_index.articles_by_section.values()) >= 34


def test_every_article_cites_two_sources_and_links_three_articles(site_index: SiteIndex) -> None:
    for key, page in site_index.pages.items():
        assert page.meta.summary and page.meta.last_reviewed, key
        distinct = set(page.cited_keys)
        assert len(distinct) >= 2, (key, distinct)
        if page.kind != "article":
            continue
        assert page.meta.tags, key
        linked = {t for t in site_index.outbound[key]
                  if site_index.pages[t].kind == "article" and t != key}
        assert len(linked) >= 3, (key, linked)


def test_no_orphans_and_every_article_listed_in_its_section(site_index: SiteIndex) -> None:
    for key, page in articles(site_index).items():
        assert site_index.backlinks.get(key), f"{key} has no inbound links"
        assert key in site_index.articles_by_section[page.section]  # type: ignore[attr-defined]


def test_every_reference_is_cited_and_has_an_identifier_or_source(site_index: SiteIndex) -> None:
    assert set(site_index.references) == set(site_index.citing_pages)
    for key, ref in site_index.references.items():
        assert ref.title, key


def test_indications_carry_status_and_evidence(site_index: SiteIndex) -> None:
    for key in site_index.articles_by_section["indications"]:
        fields = site_index.pages[key].meta.fields
        assert fields["status"] in ("approved", "off-label", "investigational"), key
        assert fields["evidence"] in ("strong", "moderate", "low", "very low"), key
        assert fields["status_note"], key


def test_misconceptions_answer_every_correction_row(site_index: SiteIndex) -> None:
    page = site_index.pages["common-misconceptions"]
    headings = [h.text for h in page.markup.toc if h.level == 2]
    assert len(headings) >= len(CORRECTIONS)
    for pattern, heading in zip(CORRECTIONS, headings, strict=False):
        assert re.search(pattern, heading), (pattern, heading)
    # every section carries at least one citation
    text = (REPO / "content/evidence/common-misconceptions.md").read_text("utf-8")
    sections = re.split(r"^## ", text, flags=re.M)[1:]
    assert len(sections) == len(CORRECTIONS)
    for section in sections:
        assert "[@" in section, section.splitlines()[0]


def test_dosing_text_is_framed_as_reported_figures() -> None:
    """Dose figures must read as study/label reports, never as instructions."""
    imperative = re.compile(r"^\s*(?:[-*]\s*)?(?:Take|Give|Administer|Inject|Use)\s+\d", re.M)
    for path in (REPO / "content").rglob("*.md"):
        assert not imperative.search(path.read_text("utf-8")), path
