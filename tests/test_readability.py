"""Reading grades: the syllable counter, sentences, prose taken from HTML, Flesch-Kincaid on
known sentences (grades computed by hand below), the config thresholds, and `check`'s
warnings and JSON figures on a tiny site."""

from __future__ import annotations

import json

import pytest
from conftest import MINIMAL_CONFIG, article, run_cli

from kbgen.readability import (
    count_syllables,
    prose_blocks,
    split_sentences,
    text_stats,
    words_of,
)


@pytest.mark.parametrize(
    ("word", "syllables"),
    [
        ("the", 1), ("cat", 1), ("make", 1), ("makes", 1), ("there", 1), ("used", 1),
        ("called", 1), ("blood", 1), ("while", 1), ("free", 1), ("times", 1),
        ("table", 2), ("simple", 2), ("doctor", 2), ("doctors", 2), ("wanted", 2),
        ("needed", 2), ("doses", 2), ("changes", 2), ("boxes", 2), ("agree", 2),
        ("treatment", 2), ("breathing", 2), ("patients", 2), ("nation", 2),
        ("ketamine", 3), ("medicine", 3), ("hospital", 3), ("depression", 3),
        ("esketamine", 4), ("usually", 4), ("medium", 3), ("media", 3),
        ("anaesthesia", 5), ("long-term", 2), ("and/or", 2), ("2019", 1), ("Ketamine,", 3),
    ],
)
def test_syllable_counts(word: str, syllables: int) -> None:
    assert count_syllables(word) == syllables


def test_sentences_split_after_stops_but_not_after_abbreviations() -> None:
    text = "It works (e.g. in trials). Does it last? No! Doses of 0.5 mg/kg are common."
    assert split_sentences(text) == [
        "It works (e.g. in trials).", "Does it last?", "No!", "Doses of 0.5 mg/kg are common."]
    assert split_sentences('He said "stop." Then he left.') == ['He said "stop."', "Then he left."]
    assert words_of("A - b, 12 (c).") == ["A", "b,", "12", "(c)."]


def test_flesch_kincaid_on_hand_counted_sentences() -> None:
    # 6 words, 1 sentence, 6 syllables: 0.39*6 + 11.8*1 - 15.59 = -1.45
    stats = text_stats(["The cat sat on the mat."])
    assert (stats.words, stats.sentences, stats.syllables) == (6, 1, 6)
    assert stats.grade == pytest.approx(-1.45)
    # Ke-ta-mine is a med-i-cine that doc-tors use for an-aes-the-si-a:
    # 9 words, 18 syllables: 0.39*9 + 11.8*2 - 15.59 = 11.52
    stats = text_stats(["Ketamine is a medicine that doctors use for anaesthesia."])
    assert (stats.words, stats.sentences, stats.syllables) == (9, 1, 18)
    assert stats.grade == pytest.approx(11.52)
    # two blocks are two sentences even without a full stop: 4 words, 2 sentences, 4 syll.
    stats = text_stats(["Take care", "Ask first"])
    assert (stats.words, stats.sentences) == (4, 2)
    assert stats.grade == pytest.approx(0.39 * 2 + 11.8 * 1 - 15.59)
    assert text_stats([""]).grade is None


def test_prose_leaves_out_code_tables_headings_and_citation_numbers() -> None:
    html = (
        '<h2 id="x">A long heading</h2><p>Ketamine works <sup class="cite"><a href="#ref-1">1'
        '</a></sup> fast, see <a href="../y/">the <abbr title="t">NMDA</abbr> page</a>.</p>'
        "<pre><code>x = 1</code></pre><ul><li>One item</li><li><p>Two</p></li></ul>"
        "<table><tr><td>cell</td></tr></table><p>Last &amp; least<br>line</p>"
    )
    assert prose_blocks(html) == [
        "Ketamine works fast, see the NMDA page.", "One item", "Two", "Last & least", "line"]


CONFIG = MINIMAL_CONFIG + "readability: {in_short_max_grade: 8, body_max_grade: 12}\n"
HARD = ("Pharmacokinetic characterisation demonstrates considerable interindividual "
        "variability in bioavailability following administration.")


def _site(make_site, config: str = CONFIG):
    return make_site({
        "content/mechanism/plain.md": article(
            "Plain", "It is a drug. See [[hard]] and [[none]].",
            extra="status: established\nin_short: It is a drug. It helps some people."),
        "content/mechanism/hard.md": article(
            "Hard", f"{HARD} See [[plain]].",
            extra=f"status: established\nin_short: {HARD}"),
        "content/mechanism/none.md": article(
            "None", "A cat sat. See [[plain]] and [[hard]].", extra="status: established"),
    }, config=config)


def test_check_warns_above_the_thresholds_and_reports_figures(make_site) -> None:
    root = _site(make_site)
    result = run_cli(root, "check")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "warning" in line]
    assert lines == [
        # 10 words, 49 syllables: 0.39*10 + 11.8*4.9 - 15.59 = 46.13
        "content/mechanism/hard.md:7:1: warning: in_short reads at grade 46.1 (Flesch-Kincaid); "
        "the limit is 8",
        # with "See Plain.": 12 words, 2 sentences, 51 syllables = 36.9
        "content/mechanism/hard.md:9:1: warning: the body reads at grade 36.9 (Flesch-Kincaid, "
        "12 words in 2 sentences); the limit is 12",
        "content/mechanism/none.md:1:1: warning: article has no in_short",
    ]
    strict = run_cli(root, "check", "--strict")
    assert strict.returncode == 1 and strict.stderr.count("error:") == 3
    figures = json.loads(run_cli(root, "check", "--format", "json").stdout)
    assert figures["warnings"] == 3
    by_slug = {f["slug"]: f for f in figures["readability"]}
    assert by_slug["plain"] == {
        "path": "content/mechanism/plain.md", "slug": "plain", "words": 8, "sentences": 2,
        "body_grade": round(0.39 * 4 + 11.8 * 1 - 15.59, 1), "in_short_words": 8,
        "in_short_grade": round(0.39 * 4 + 11.8 * 9 / 8 - 15.59, 1)}
    assert by_slug["none"]["in_short_grade"] is None


def test_without_readability_in_config_nothing_is_measured(make_site) -> None:
    root = _site(make_site, MINIMAL_CONFIG)
    result = run_cli(root, "check", "--format", "json")
    assert result.returncode == 0
    payload = json.loads(result.stdout)
    assert "readability" not in payload and payload["warnings"] == 0


def test_a_repeated_check_still_measures(make_site) -> None:
    root = _site(make_site)
    assert run_cli(root, "build").returncode == 0  # the next check finds nothing changed
    assert "article has no in_short" in run_cli(root, "check").stderr
