"""Charts drawn at build time from a section's numeric typed fields, as inline SVG.

Input: one `ChartRow` per article of a section (its title, URL and number fields by name).
Output: `Chart` values (SVG text, a title and a description for `role="img"`, and the data
table shown under it) for the sections whose schemas carry the fields below; a section
without them gets none. No JavaScript; colours come from the theme's custom properties, so
the charts follow light, dark and print, and every series also differs by shape or pattern.

- `timing`: onset, time to peak and duration of each route (`onset_minutes_min`/`_max`,
  `peak_minutes_min`/`_max`, `duration_minutes_min`/`_max`) on one logarithmic time axis.
- `bioavailability`: `bioavailability_min`/`_max` as bars from 0 to 100%.
- `trial rates`: `trial_rate` against `trial_placebo_rate` (per `trial_effect`), as pairs
  of bars.
- `history`: the dated events of `content/timeline.yaml` (timeline.py) on a time axis, each
  joined to its row of text, its kind told by marker shape; the table cites its sources.

A range is a `_min` and a `_max`; a single figure is `_min` alone. Coordinates are rounded,
so the same numbers give the same bytes.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kbgen.timeline import EVENT_KINDS, KIND_LABELS, TimelineEvent

WIDTH = 520  #: viewBox width: a phone shows it whole, labels at about 10 px
LABEL_W = 205  #: room for the row labels on the left
ROW_H = 30
TOP = 34  #: room for the legend
BOTTOM = 34  #: room for the axis labels
RIGHT = 16

Span = tuple[float, float]  #: (low, high); equal for a single figure
#: a data-table cell: text, or links (text, href) such as a row's numbered sources
Cell = str | tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class ChartRow:
    title: str
    url: str
    numbers: Mapping[str, float]  #: the article's number fields by name
    effect: str = ""  #: `trial_effect`: what the trial rates count ("" : the title)


@dataclass(frozen=True, slots=True)
class Chart:
    id: str  #: HTML id of the figure
    title: str
    description: str  #: what the picture shows, in words (aria-describedby)
    svg: str
    columns: tuple[str, ...]  #: the data table's column headings (after the row label)
    rows: tuple[tuple[str, str, tuple[Cell, ...]], ...]  #: (title, url or "", cells)
    row_label: str = "Page"  #: the heading of the rows' first column
    data_label: str = "The numbers"  #: what opens the data table


def span(numbers: Mapping[str, float], stem: str) -> Span | None:
    low = numbers.get(f"{stem}_min")
    if low is None:
        return None
    high = numbers.get(f"{stem}_max", low)
    return (low, high) if high >= low else (high, low)


def span_text(value: Span | None, unit: str = "") -> str:
    if value is None:
        return "not established"
    low, high = value
    text = f"{low:g}" if low == high else f"{low:g}–{high:g}"
    return text + unit


def section_charts(rows: Sequence[ChartRow], field_names: frozenset[str]) -> list[Chart]:
    """The charts a section's schema allows, for its articles (in section order)."""
    charts = []
    if {"onset_minutes_min", "peak_minutes_min", "duration_minutes_min"} <= field_names:
        charts.append(timing_chart(rows))
    if "bioavailability_min" in field_names:
        charts.append(bioavailability_chart(rows))
    if {"trial_rate", "trial_placebo_rate"} <= field_names:
        chart = trial_rate_chart(rows)
        if chart is not None:
            charts.append(chart)
    return charts


# -- timing ----------------------------------------------------------------------------------

TIMING_SERIES = (  # (field stem, label, css class, marker shape)
    ("onset_minutes", "Onset", "ch-a", "circle"),
    ("peak_minutes", "Time to peak", "ch-b", "diamond"),
    ("duration_minutes", "Duration", "ch-c", "square"),
)
TICKS = (0.5, 1, 2, 5, 10, 20, 60, 120)  #: minutes on the log axis
AXIS_LOW, AXIS_HIGH = 0.25, 180.0


def _log_x(minutes: float) -> float:
    share = (math.log(max(minutes, AXIS_LOW)) - math.log(AXIS_LOW)) / (
        math.log(AXIS_HIGH) - math.log(AXIS_LOW)
    )
    return LABEL_W + share * (WIDTH - LABEL_W - RIGHT)


def timing_chart(rows: Sequence[ChartRow]) -> Chart:
    height = TOP + len(rows) * ROW_H + BOTTOM
    parts = [
        _open(height, "ch-timing"),
        _legend([(c, s, label) for _, label, c, s in TIMING_SERIES]),
    ]
    parts += _rows_grid(rows)
    for tick in TICKS:
        x = round(_log_x(tick))
        parts.append(f'<line class="ch-grid" x1="{x}" y1="{TOP}" x2="{x}" y2="{height - BOTTOM}"/>')
        parts.append(
            f'<text class="ch-tick" x="{x}" y="{height - BOTTOM + 16}" '
            f'text-anchor="middle">{_minutes(tick)}</text>'
        )
    parts.append(
        f'<text class="ch-tick" x="{WIDTH - RIGHT}" y="{height - 4}" '
        'text-anchor="end">minutes after a dose (log scale)</text>'
    )
    for n, row in enumerate(rows):
        if all(span(row.numbers, stem) is None for stem, *_ in TIMING_SERIES):
            parts.append(
                f'<text class="ch-none" x="{LABEL_W + 6}" y="{TOP + n * ROW_H + 19}">'
                "not established</text>"
            )
        for k, (stem, _, css, shape) in enumerate(TIMING_SERIES):
            value = span(row.numbers, stem)
            if value is None:
                continue
            y = TOP + n * ROW_H + 9 + k * 6
            x1, x2 = round(_log_x(value[0])), round(_log_x(value[1]))
            if x2 > x1:
                parts.append(
                    f'<line class="ch-range {css}" x1="{x1}" y1="{y}" x2="{x2}" y2="{y}"/>'
                )
            parts.append(_marker(shape, css, x1, y))
            if x2 > x1:
                parts.append(_marker(shape, css, x2, y))
    parts.append("</svg>")
    table = tuple(
        (
            row.title,
            row.url,
            tuple(span_text(span(row.numbers, stem)) for stem, *_ in TIMING_SERIES),
        )
        for row in rows
    )
    described = [
        f"{row.title}: "
        + ", ".join(
            f"{label.lower()} {span_text(span(row.numbers, stem), ' min')}"
            for stem, label, *_ in TIMING_SERIES
        )
        for row in rows
    ]
    return Chart(
        "chart-timing",
        "How fast each route acts: onset, time to peak and duration, in minutes",
        "; ".join(described) + ". Figures as stated on each route's page, which gives the "
        "conditions (anaesthetic doses, a study in children).",
        "".join(parts),
        ("Onset (min)", "Time to peak (min)", "Duration (min)"),
        table,
    )


def _minutes(value: float) -> str:
    return f"{value / 60:g} h" if value >= 60 else f"{value:g}"


# -- bars ------------------------------------------------------------------------------------


def _bar_x(percent: float) -> float:
    return LABEL_W + percent / 100 * (WIDTH - LABEL_W - RIGHT - 40)


def bioavailability_chart(rows: Sequence[ChartRow]) -> Chart:
    height = TOP + len(rows) * ROW_H + BOTTOM
    parts = [
        _open(height, "ch-bio"),
        _legend([("ch-a", "bar", "reported figure"), ("ch-a ch-upper", "bar", "range up to")]),
    ]
    parts += _rows_grid(rows)
    parts += _percent_axis(height)
    for n, row in enumerate(rows):
        value = span(row.numbers, "bioavailability")
        y = TOP + n * ROW_H + 7
        if value is None:
            parts.append(
                f'<text class="ch-none" x="{LABEL_W + 6}" y="{y + 12}">not established</text>'
            )
            continue
        x0, x1, x2 = LABEL_W, round(_bar_x(value[0])), round(_bar_x(value[1]))
        parts.append(f'<rect class="ch-a" x="{x0}" y="{y}" width="{x1 - x0}" height="16"/>')
        if x2 > x1:
            parts.append(
                f'<rect class="ch-a ch-upper" x="{x1}" y="{y}" width="{x2 - x1}" height="16"/>'
            )
        parts.append(
            f'<text class="ch-value" x="{x2 + 5}" y="{y + 12}">{span_text(value, "%")}</text>'
        )
    parts.append("</svg>")
    return Chart(
        "chart-bioavailability",
        "Bioavailability: how much of a dose reaches the blood, by route",
        "; ".join(
            f"{row.title}: {span_text(span(row.numbers, 'bioavailability'), '%')}" for row in rows
        )
        + ".",
        "".join(parts),
        ("Bioavailability (%)",),
        tuple(
            (row.title, row.url, (span_text(span(row.numbers, "bioavailability")),)) for row in rows
        ),
    )


def trial_rate_chart(rows: Sequence[ChartRow]) -> Chart | None:
    counted = sorted(  # most frequent first: the order a reader compares them in
        (
            row
            for row in rows
            if "trial_rate" in row.numbers and "trial_placebo_rate" in row.numbers
        ),
        key=lambda row: (-row.numbers["trial_rate"], _effect(row).lower()),
    )
    if not counted:
        return None
    pair_h = 2 * ROW_H - 12
    height = TOP + len(counted) * pair_h + BOTTOM
    parts = [
        _open(height, "ch-trials"),
        _legend([("ch-a", "bar", "esketamine"), ("ch-p", "bar", "placebo")]),
    ]
    parts.append(
        '<defs><pattern id="ch-hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect class="ch-p-bg" width="6" height="6"/>'
        '<line class="ch-p-line" x1="0" y1="0" x2="0" y2="6"/></pattern></defs>'
    )
    parts += _percent_axis(height)
    for n, row in enumerate(counted):
        y = TOP + n * pair_h
        label = _effect(row)
        parts.append(
            f'<text class="ch-label" x="{LABEL_W - 8}" y="{y + 22}" text-anchor="end">'
            f"{html.escape(label)}</text>"
        )
        for k, (name, css) in enumerate((("trial_rate", "ch-a"), ("trial_placebo_rate", "ch-p"))):
            value = row.numbers[name]
            yy = y + 4 + k * 18
            width = round(_bar_x(value)) - LABEL_W
            fill = ' fill="url(#ch-hatch)"' if css == "ch-p" else ""
            parts.append(
                f'<rect class="{css}" x="{LABEL_W}" y="{yy}" width="{width}" height="15"{fill}/>'
            )
            parts.append(
                f'<text class="ch-value" x="{LABEL_W + width + 5}" y="{yy + 12}">{value:g}%</text>'
            )
    parts.append("</svg>")
    return Chart(
        "chart-trial-rates",
        "How often each effect occurred with esketamine and with placebo",
        "; ".join(
            f"{_effect(row)}: {row.numbers['trial_rate']:g}% with esketamine, "
            f"{row.numbers['trial_placebo_rate']:g}% with placebo"
            for row in counted
        )
        + ". Rates from the esketamine label's short-term trials, as stated on each page.",
        "".join(parts),
        ("Effect", "Esketamine (%)", "Placebo (%)"),
        tuple(
            (
                row.title,
                row.url,
                (
                    _effect(row),
                    f"{row.numbers['trial_rate']:g}",
                    f"{row.numbers['trial_placebo_rate']:g}",
                ),
            )
            for row in counted
        ),
    )


def _effect(row: ChartRow) -> str:
    return row.effect or row.title


# -- history timeline ------------------------------------------------------------------------

HISTORY_WIDTH = 380  #: narrower than the others: a phone shows its wrapped text at ~12 px
AXIS_X = 44  #: the time axis, year labels to its left
ROW_X = 118  #: each event's marker; its text starts just right of it
TEXT_CHARS = 36  #: characters per line of an event's text
LINE_H = 16
EVENT_GAP = 10
LEGEND_ROW = 18
#: each kind of event: (css class, marker shape), so kinds differ in shape as well as colour
KIND_MARKS = {"research": ("ch-a", "circle"), "approval": ("ch-c", "square"),
              "control": ("ch-b", "diamond")}


def timeline_chart(events: Sequence[TimelineEvent], numbers: Mapping[str, int]) -> Chart:
    """The dated events down a time axis: each event a row of text (date, then its label
    wrapped), joined by a line to its place on the axis, which is to scale (so clusters and
    gaps show) while the rows stay evenly readable. `numbers`: each cited reference's
    number in the page's reference list (the data table links to them)."""
    kinds = [k for k in EVENT_KINDS if any(e.kind == k for e in events)]
    top = 12 + LEGEND_ROW * len(kinds) + 14
    wrapped = [_wrap(event.label, TEXT_CHARS) for event in events]
    heights = [LINE_H * (1 + len(lines)) + EVENT_GAP for lines in wrapped]
    height = top + sum(heights) + 8
    first, last = _decades(events)
    scale = (height - top - 18) / max(last - first, 1)

    def axis_y(years: float) -> int:
        return round(top + 6 + (years - first) * scale)

    parts = [
        _open(height, "ch-history", HISTORY_WIDTH),
        _legend([(*KIND_MARKS[k], KIND_LABELS[k]) for k in kinds], ROW_X - 8, stacked=True),
        f'<line class="ch-axis" x1="{AXIS_X}" y1="{axis_y(first)}" x2="{AXIS_X}" '
        f'y2="{axis_y(last)}"/>',
    ]
    for year in range(first, last + 1, 10):
        y = axis_y(year)
        parts.append(f'<line class="ch-grid" x1="{AXIS_X - 5}" y1="{y}" x2="{AXIS_X}" y2="{y}"/>')
        parts.append(
            f'<text class="ch-tick" x="{AXIS_X - 8}" y="{y + 4}" text-anchor="end">{year}</text>'
        )
    y = top
    for event, lines, row_height in zip(events, wrapped, heights, strict=True):
        css, shape = KIND_MARKS[event.kind]
        marker_y = y + 11
        parts.append(
            f'<polyline class="ch-link" points="{AXIS_X} {axis_y(event.date.position)} '
            f'{AXIS_X + 14} {axis_y(event.date.position)} {ROW_X - 9} {marker_y}"/>'
        )
        parts.append(f'<circle class="ch-dot {css}" cx="{AXIS_X}" '
                     f'cy="{axis_y(event.date.position)}" r="2.5"/>')
        parts.append(_marker(shape, css, ROW_X, marker_y))
        parts.append(_event_text(event.date.text, lines, y))
        y += row_height
    parts.append("</svg>")
    return Chart(
        "chart-history",
        "Timeline: dates in the history of ketamine",
        "; ".join(f"{e.date.text}: {e.label}" for e in events) + ".",
        "".join(parts),
        ("Event", "Sources"),
        tuple(
            (e.date.text, "", (e.label, tuple(
                (f"[{numbers[key]}]", f"#ref-{numbers[key]}") for key in e.cite if key in numbers
            )))
            for e in events
        ),
        row_label="Date",
        data_label="The events and their sources",
    )


def _event_text(date: str, lines: Sequence[str], y: int) -> str:
    x = ROW_X + 12
    tspans = "".join(
        f'<tspan x="{x}" dy="{LINE_H}">{html.escape(line)}</tspan>' for line in lines
    )
    return f'<text class="ch-event" x="{x}" y="{y + 15}"><tspan class="ch-date">' \
        f'{html.escape(date)}</tspan>{tspans}</text>'


def _decades(events: Sequence[TimelineEvent]) -> tuple[int, int]:
    """The axis's first and last year: the decades around the events."""
    if not events:
        return 2000, 2010
    low = min(e.date.year for e in events)
    high = max(e.date.year for e in events) + 1
    return low - low % 10, high + (-high) % 10


def _wrap(text: str, limit: int) -> list[str]:
    """Words in lines of at most `limit` characters (a longer word gets its own line)."""
    lines: list[str] = []
    for word in text.split():
        if lines and len(lines[-1]) + 1 + len(word) <= limit:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines


# -- shared pieces ---------------------------------------------------------------------------


def _open(height: int, css: str, width: int = WIDTH) -> str:
    # aria-hidden: the figure is the image (role="img", named and described in HTML), and
    # its data table carries the numbers for screen readers
    return (
        f'<svg class="chart {css}" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" aria-hidden="true" focusable="false">'
    )


def _rows_grid(rows: Sequence[ChartRow]) -> list[str]:
    parts = []
    for n, row in enumerate(rows):
        y = TOP + n * ROW_H
        if n % 2 == 0:
            parts.append(f'<rect class="ch-band" x="0" y="{y}" width="{WIDTH}" height="{ROW_H}"/>')
        parts.append(
            f'<text class="ch-label" x="{LABEL_W - 8}" y="{y + 20}" text-anchor="end">'
            f"{html.escape(_short(row.title))}</text>"
        )
    return parts


def _percent_axis(height: int) -> list[str]:
    parts = []
    for tick in (0, 25, 50, 75, 100):
        x = round(_bar_x(tick))
        parts.append(f'<line class="ch-grid" x1="{x}" y1="{TOP}" x2="{x}" y2="{height - BOTTOM}"/>')
        parts.append(
            f'<text class="ch-tick" x="{x}" y="{height - BOTTOM + 16}" '
            f'text-anchor="middle">{tick}%</text>'
        )
    return parts


def _legend(
    entries: Sequence[tuple[str, str, str]], x: int = LABEL_W, stacked: bool = False
) -> str:
    """Legend entries in a row from `x` (or `stacked`, one under another: narrow charts)."""
    parts, y = [], 0
    for css, shape, label in entries:
        if shape == "bar":
            fill = ' fill="url(#ch-hatch)"' if css == "ch-p" else ""
            parts.append(f'<rect class="{css}" x="{x}" y="{y + 8}" width="16" height="12"{fill}/>')
        else:
            parts.append(_marker(shape, css, x + 8, y + 14))
        parts.append(
            f'<text class="ch-tick" x="{x + 22}" y="{y + 19}">{html.escape(label)}</text>'
        )
        if stacked:
            y += LEGEND_ROW
        else:
            x += 30 + 7 * len(label)
    return "".join(parts)


def _marker(shape: str, css: str, x: int, y: int) -> str:
    if shape == "circle":
        return f'<circle class="ch-mark {css}" cx="{x}" cy="{y}" r="5"/>'
    if shape == "diamond":
        return f'<path class="ch-mark {css}" d="M{x} {y - 6}l6 6l-6 6l-6-6z"/>'
    return f'<rect class="ch-mark {css}" x="{x - 5}" y="{y - 5}" width="10" height="10"/>'


def _short(title: str, limit: int = 27) -> str:
    return title if len(title) <= limit else title[: limit - 1].rstrip() + "…"


__all__ = ["Chart", "ChartRow", "section_charts", "span", "span_text", "timeline_chart"]
