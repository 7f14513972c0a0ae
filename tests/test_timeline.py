"""The history timeline (content/timeline.yaml -> kbgen/timeline.py -> charts.timeline_chart):
dates as precise as written, every problem at file:line:col with a fix, drawn on its one
page with a data table whose sources are that page's numbered references, and redrawn with
only that page when the file changes."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import REPO, anchors, article, read_out, run_build

from kbgen.timeline import EventDate, load_timeline, parse_date

REFERENCES = """\
smith-2020:
  title: A study
  year: 2020
jones-2021:
  title: Another study
  year: 2021
"""

TIMELINE = """\
page: history
events:
  - date: 2021-03-05
    label: Approved in one country
    kind: approval
    cite: [jones-2021]
  - date: 1962
    label: First made
    cite: [smith-2020, jones-2021]
  - date: 1999-07
    label: Placed under control
    kind: control
    cite: [smith-2020]
"""


def _site(make_site, timeline: str = TIMELINE) -> Path:
    return make_site(
        {
            "content/references.yaml": REFERENCES,
            "content/timeline.yaml": timeline,
            "content/mechanism/history.md": article(
                "History", "Since [[other]] [@smith-2020].", extra="status: established"
            ),
            "content/mechanism/other.md": article(
                "Other", "See [[history]].", extra="status: established"
            ),
        }
    )


def _errors(root: Path) -> list[str]:
    return [d.format() for d in run_build(root).diagnostics if d.is_error]


def test_dates_are_as_precise_as_written() -> None:
    assert parse_date("1962") == EventDate(1962)
    assert parse_date("2015-12") == EventDate(2015, 12)
    assert parse_date("1999-07-13") == EventDate(1999, 7, 13)
    assert [d.text for d in (EventDate(1962), EventDate(2015, 12), EventDate(1999, 7, 13))] == [
        "1962", "Dec 2015", "13 Jul 1999"
    ]
    assert EventDate(1999, 7, 13).iso == "1999-07-13"
    for wrong in ("2019-13", "2019-02-30", "62", "1962-1", "in 1962", "1700"):
        assert parse_date(wrong) is None, wrong
    # a year sorts after a day early in it and before one late in it
    assert EventDate(2006, 1, 1).position < EventDate(2006).position < EventDate(2006, 12).position


def test_events_are_sorted_by_date_and_keep_their_sources() -> None:
    timeline, problems = load_timeline(TIMELINE, "content/timeline.yaml",
                                       frozenset({"smith-2020", "jones-2021"}))
    assert problems == [] and timeline is not None
    assert [e.date.text for e in timeline.events] == ["1962", "Jul 1999", "5 Mar 2021"]
    assert timeline.events[0].cite == ("smith-2020", "jones-2021")
    assert timeline.events[0].kind == "research"  # the default kind
    assert (timeline.page, timeline.page_line, timeline.page_col) == ("history", 1, 7)


def test_each_problem_is_an_error_at_its_place_with_a_fix(make_site) -> None:
    bad = TIMELINE.replace("date: 1999-07", "date: 1999-7").replace(
        "[smith-2020, jones-2021]", "[smith-2020, jones-2012]"
    ).replace("    kind: approval\n", "    kind: approved\n    where: here\n")
    errors = _errors(_site(make_site, bad))
    assert errors == [
        "content/timeline.yaml:5:11: error: 'kind' of timeline event 1 must be one of research, "
        "approval, control, not 'approved'\n  hint: did you mean 'approval'?",
        "content/timeline.yaml:6:5: error: unknown field 'where' in timeline event 1\n"
        "  hint: allowed fields: date, label, kind, cite",
        "content/timeline.yaml:10:24: error: unknown reference key 'jones-2012' in timeline "
        "event 2\n  hint: did you mean 'jones-2021'?",
        "content/timeline.yaml:11:11: error: 'date' of timeline event 3 must be a year, a month "
        "or a day (YYYY, YYYY-MM or YYYY-MM-DD between 1800 and 2100), not '1999-7'\n"
        "  hint: for example 1962, 2015-12 or 1999-07-13; give only as much as the source says",
    ]


def test_a_missing_field_or_page_is_an_error(make_site) -> None:
    no_label = TIMELINE.replace("    label: First made\n", "")
    assert _errors(_site(make_site, no_label)) == [
        "content/timeline.yaml:7:5: error: timeline event 2 has no 'label'\n"
        "  hint: add 'label: ...' (what happened, in a short sentence)"
    ]
    wrong_page = TIMELINE.replace("page: history", "page: histroy")
    assert _errors(_site(make_site, wrong_page)) == [
        "content/timeline.yaml:1:7: error: the timeline's page 'histroy' is not an article\n"
        "  hint: did you mean 'history'?"
    ]
    no_events = "page: history\n"
    assert _errors(_site(make_site, no_events)) == [
        "content/timeline.yaml:1:1: error: timeline.yaml has no 'events'\n"
        "  hint: add 'events:' (a list of dated events)"
    ]


def test_the_page_draws_it_as_an_image_with_a_table_of_numbered_sources(make_site) -> None:
    root = _site(make_site)
    result = run_build(root)
    assert result.ok, [d.format() for d in result.diagnostics]
    html = read_out(root, "mechanism/history/index.html")
    assert 'role="img" aria-labelledby="chart-history-title"' in html
    assert 'aria-describedby="chart-history-desc"' in html
    description = re.search(r'<p class="visually-hidden" id="chart-history-desc">(.*?)</p>', html)
    assert description and description.group(1).startswith("1962: First made; Jul 1999: Placed")
    assert "<script" not in html.split('id="chart-history"')[1].split("</figure>")[0]
    # the body cites smith-2020 as [1]; jones-2021, cited only by the timeline, becomes [2]
    references = html.split('<section class="references"')[1]
    assert references.index("A study") < references.index("Another study")
    table = html.split('<details class="chart-data">')[1].split("</details>")[0]
    assert [(href, text) for href, text, _ in anchors(table)] == [
        ("#ref-1", "[1]"), ("#ref-2", "[2]"), ("#ref-1", "[1]"), ("#ref-2", "[2]")
    ]
    assert "<th scope=\"row\">Jul 1999</th>" in table
    # only its page shows it; the bibliography counts the timeline's citations
    assert "chart-history" not in read_out(root, "mechanism/other/index.html")
    bibliography = read_out(root, "bibliography/index.html")
    assert bibliography.count('href="../mechanism/history/"') >= 2


def test_an_edit_of_the_file_redraws_only_its_page(make_site) -> None:
    root = _site(make_site)
    assert run_build(root).ok
    before = read_out(root, "mechanism/history/index.html")
    timeline = root / "content/timeline.yaml"
    timeline.write_text(timeline.read_text().replace("First made", "First synthesised"))
    result = run_build(root)
    assert result.ok
    assert result.mode == "warm"
    after = read_out(root, "mechanism/history/index.html")
    assert "First synthesised" in after and after != before
    assert {n for n in result.rendered if n.startswith("page:")} == {"page:history"}, (
        result.rendered
    )


def test_the_repository_timeline_cites_only_known_references() -> None:
    """The real data file loads without a problem and shows on the history page."""
    from kbgen.citations import load_references

    references, _ = load_references(
        (REPO / "content/references.yaml").read_text("utf-8"), "content/references.yaml"
    )
    text = (REPO / "content/timeline.yaml").read_text("utf-8")
    timeline, problems = load_timeline(text, "content/timeline.yaml", frozenset(references))
    assert problems == [] and timeline is not None
    assert timeline.page == "history-and-regulation"
    assert len(timeline.events) >= 15
    assert (REPO / "content/safety/history-and-regulation.md").is_file()
