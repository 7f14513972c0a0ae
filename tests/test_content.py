"""The repository's knowledge base meets the editorial rules (issue: the knowledge base itself).

These run the real engine over content/ (no output written) and assert the counts and the
graph properties the editors promised: enough articles per section (>= 52 in all), an "In
short" on every article, >= 2 distinct citations and >= 3 links to other articles per article,
no orphans, every reference cited and every identifier traced to the fact base, reading grades
within config.yaml's thresholds (median body <= 10), a median article of >= 600 words, the
editorial-policy page, the drug-interaction table, and every row of the fact base's
corrections table answered in the misconceptions article (issue #16).

The fact base is ../shared/ketamine-facts.md beside the repository (as CI lays it out), or the
file named by $KETAMINE_FACTS; without it, the identifier test is skipped, saying so.
"""

from __future__ import annotations

import os
import re
import statistics
from pathlib import Path

import pytest
from conftest import REPO, TODAY

from kbgen.config import load_config
from kbgen.incremental import Builder
from kbgen.model import Page
from kbgen.pipeline import BuildOptions
from kbgen.readability import ArticleReadability, measure_site
from kbgen.site_index import SiteIndex

MINIMUM_ARTICLES_IN_ALL = 52
MEDIAN_WORDS = 600  #: prose words (kbgen.readability: without code, tables and headings)
MEDIAN_BODY_GRADE = 10.0
FACTS = Path(os.environ.get("KETAMINE_FACTS") or REPO.parent / "shared" / "ketamine-facts.md")
UNVERIFIED_HEADING = re.compile(r"^## 15\. Unverified", re.M)

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


def articles(index: SiteIndex) -> dict[str, Page]:
    return {k: p for k, p in index.pages.items() if p.kind == "article"}


@pytest.fixture(scope="module")
def figures(site_index: SiteIndex) -> dict[str, ArticleReadability]:
    config, diagnostics = load_config(REPO / "config.yaml")
    assert config is not None, diagnostics
    return {figure.slug: figure for figure in measure_site(site_index, config)}


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
    total = sum(len(v) for v in site_index.articles_by_section.values())
    assert total >= MINIMUM_ARTICLES_IN_ALL, f"{total} articles"


def test_every_article_has_an_in_short(site_index: SiteIndex) -> None:
    missing = sorted(p.source for p in articles(site_index).values() if not p.meta.in_short)
    assert missing == [], f"{len(missing)} articles without in_short"


def test_every_article_cites_two_sources_and_links_three_articles(site_index: SiteIndex) -> None:
    for key, page in site_index.pages.items():
        if page.kind == "page":
            continue  # the editorial policy (content/about.md) need not cite the literature
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


def _identifiers_outside_unverified() -> str:
    text = FACTS.read_text("utf-8")
    found = UNVERIFIED_HEADING.search(text)
    if found is not None:  # up to the next top-level section after it, if any
        rest = text[found.end():]
        following = re.search(r"^## ", rest, re.M)
        text = text[: found.start()] + (rest[following.start():] if following else "")
    return text.lower()


def _url_identifiers(url: str) -> list[str]:
    """What the fact base records of a URL: a label's set id (DailyMed, FDALabel), a trial's
    registry number, or else the address without its scheme and "www."."""
    lowered = url.lower()
    setids = re.findall(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", lowered)
    trials = re.findall(r"nct\d{8}", lowered)
    address = re.sub(r"^https?://(www\.)?", "", lowered).rstrip("/")
    return setids or trials or [address]


def test_every_identifier_is_in_the_fact_base_outside_unverified(site_index: SiteIndex) -> None:
    if not FACTS.is_file():
        pytest.skip(f"the fact base is not at {FACTS} (set KETAMINE_FACTS to its path)")
    facts = _identifiers_outside_unverified()
    missing = []
    for key, ref in sorted(site_index.references.items()):
        wanted: list[str] = []
        if ref.doi:
            wanted.append(ref.doi.lower())
        if ref.pmcid:
            wanted.append(ref.pmcid.lower())
        if ref.url:
            wanted += _url_identifiers(ref.url)
        for identifier in wanted:
            if identifier not in facts:
                missing.append(f"{key}: {identifier}")
        if ref.pmid and not re.search(rf"(?<!\d){re.escape(ref.pmid)}(?!\d)", facts):
            missing.append(f"{key}: PMID {ref.pmid}")
    assert missing == []


def test_reading_grades_are_within_the_thresholds(
    site_index: SiteIndex, figures: dict[str, ArticleReadability]
) -> None:
    config, _ = load_config(REPO / "config.yaml")
    assert config is not None and config.readability is not None, "config.yaml: readability"
    limits = config.readability
    hard_short = {slug: f.in_short_grade for slug, f in figures.items()
                  if f.in_short_grade is not None and f.in_short_grade > limits.in_short_max_grade}
    hard_body = {slug: f.body_grade for slug, f in figures.items()
                 if f.body_grade is not None and f.body_grade > limits.body_max_grade}
    assert hard_short == {}, f"{len(hard_short)} In shorts above grade {limits.in_short_max_grade}"
    assert hard_body == {}, f"{len(hard_body)} bodies above grade {limits.body_max_grade}"
    median = statistics.median(f.body_grade or 0.0 for f in figures.values())
    assert median <= MEDIAN_BODY_GRADE, f"median body grade {median:.1f}"


def test_median_article_length(figures: dict[str, ArticleReadability]) -> None:
    median = statistics.median(f.words for f in figures.values())
    assert median >= MEDIAN_WORDS, f"median article {median:.0f} prose words"


def test_the_editorial_policy_page_exists_and_names_no_reviewer(
    site_index: SiteIndex,
) -> None:
    about = site_index.pages.get("_page:about")
    assert about is not None, "content/about.md is missing"
    assert about.meta.in_short and about.meta.title
    # no reviewer is invented: the policy says no clinician signs the articles off
    assert all(not p.meta.reviewed_by for p in site_index.pages.values())


def test_the_drug_interactions_article_has_its_table(site_index: SiteIndex) -> None:
    page = site_index.pages.get("drug-interactions")
    assert page is not None and page.section == "practical-safety"
    rows = page.meta.fields.get("interactions")
    assert isinstance(rows, tuple) and len(rows) >= 3, rows
    columns = [dict(row) for row in rows]
    assert {c["seriousness"] for c in columns} & {"life-threatening", "serious"}
    assert all(c["source"] in site_index.references for c in columns)


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
