"""Charts from typed number fields (kbgen/charts.py) and the schema keys they rely on
(`show`, `minimum`, `maximum`): drawn from the data, validated at file:line:col, and
redrawn with only the pages that read the changed field."""

# ruff: noqa: E501 (the schema lines below read best one field a line)
from __future__ import annotations

from pathlib import Path

from conftest import article, read_out, run_build, run_cli

from kbgen.charts import ChartRow, section_charts, span, span_text

CONFIG = """\
title: Chart KB
description: Charts.
search: false
sections:
  - id: routes
    title: Routes
    fields:
      approval: {label: Approval, type: text}
      bioavailability_min: {label: Bioavailability, type: number, required: false, show: false, minimum: 0, maximum: 100}
      bioavailability_max: {label: Up to, type: number, required: false, show: false, minimum: 0, maximum: 100}
      onset_minutes_min: {label: Onset, type: number, required: false, show: false, minimum: 0}
      peak_minutes_min: {label: Peak, type: number, required: false, show: false, minimum: 0}
      duration_minutes_min: {label: Duration, type: number, required: false, show: false}
  - id: effects
    title: Effects
    fields:
      trial_effect: {label: Effect, type: text, required: false, show: false}
      trial_rate: {label: Drug, type: number, required: false, show: false}
      trial_placebo_rate: {label: Placebo, type: number, required: false, show: false}
"""


def _route(title: str, numbers: str) -> str:
    return article(title, extra=f"approval: none\n{numbers}")


def _site(make_site, oral: str = "bioavailability_min: 20\nbioavailability_max: 25") -> Path:
    return make_site(
        {
            "content/routes/iv.md": _route("IV", "bioavailability_min: 100\nonset_minutes_min: 0.5"),
            "content/routes/oral.md": _route("Oral", oral + "\npeak_minutes_min: 60"),
            "content/routes/sc.md": _route("SC", ""),
            "content/effects/nausea.md": article(
                "Nausea and vomiting",
                extra="trial_effect: Nausea\ntrial_rate: 28\ntrial_placebo_rate: 9",
            ),
            "content/effects/other.md": article("Other"),
        },
        config=CONFIG,
    )


def test_spans_and_their_words() -> None:
    assert span({"x_min": 20.0, "x_max": 25.0}, "x") == (20.0, 25.0)
    assert span({"x_min": 48.0}, "x") == (48.0, 48.0)
    assert span({"x_max": 48.0}, "x") is None  # an upper bound alone says nothing
    assert span_text((20.0, 25.0), "%") == "20–25%"
    assert span_text((0.5, 0.5)) == "0.5"
    assert span_text(None) == "not established"


def test_a_section_gets_the_charts_its_fields_allow() -> None:
    rows = [ChartRow("A", "a/", {"bioavailability_min": 50.0})]
    assert [c.id for c in section_charts(rows, frozenset({"bioavailability_min"}))] == [
        "chart-bioavailability"
    ]
    assert section_charts(rows, frozenset({"onset_minutes_min"})) == []
    assert section_charts(rows, frozenset({"trial_rate", "trial_placebo_rate"})) == []  # no data


def test_section_pages_draw_charts_with_names_descriptions_and_tables(make_site) -> None:
    root = _site(make_site)
    result = run_build(root)
    assert result.ok, [d.format() for d in result.diagnostics]
    routes = read_out(root, "routes/index.html")
    assert 'role="img" aria-labelledby="chart-timing-title"' in routes
    assert 'aria-describedby="chart-bioavailability-desc"' in routes
    assert "Oral: 20–25%" in routes  # the description says the numbers in words
    assert "<td>20–25</td>" in routes  # ...and the data table has them
    assert "SC: not established" in routes
    assert routes.count("<svg class=\"chart") == 2
    effects = read_out(root, "effects/index.html")
    assert "Nausea: 28% with esketamine, 9% with placebo" in effects
    assert "Other" not in effects.split('class="charts"')[1].split("</section>")[0]
    # chart data stays out of the key facts and the comparison table
    assert "Bioavailability" not in read_out(root, "routes/oral/index.html")
    assert "<th scope=\"col\" class=\"col-number\"" not in routes


def test_a_chart_follows_its_field_and_only_its_readers_re_render(make_site) -> None:
    root = _site(make_site)
    assert run_build(root).ok
    before = read_out(root, "routes/index.html")
    oral = root / "content/routes/oral.md"
    oral.write_text(oral.read_text().replace("bioavailability_max: 25", "bioavailability_max: 30"))
    result = run_build(root)
    assert result.ok
    after = read_out(root, "routes/index.html")
    assert "Oral: 20–30%" in after and after != before
    pages = {node for node in result.rendered if node.startswith("page:")}
    assert pages == {"page:oral", "page:_section:routes"}, result.rendered


def test_a_number_outside_its_range_is_an_error_at_its_line(make_site) -> None:
    root = _site(make_site, oral="bioavailability_min: 120")
    done = run_cli(root, "build")
    assert done.returncode == 1
    assert "content/routes/oral.md:7:22: error" in done.stderr  # the value, not the key
    assert "error: 'bioavailability_min' must be between 0 and 100, not 120" in done.stderr


def test_minimum_is_only_for_number_fields(make_site) -> None:
    config = CONFIG.replace(
        "approval: {label: Approval, type: text}",
        "approval: {label: Approval, type: text, minimum: 0}",
    )
    root = make_site({"content/routes/iv.md": _route("IV", "")}, config=config)
    done = run_cli(root, "build")
    assert done.returncode == 2
    assert "'minimum' is only for number fields; 'approval' is a text field" in done.stderr
    assert "config.yaml:8:" in done.stderr
