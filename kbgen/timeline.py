"""`content/timeline.yaml` -> a `Timeline`: dated events shown as a chart on one article.

Input: the YAML text (optional: a site may have no timeline), its path for messages, and the
keys of `references.yaml` (every event cites at least one of them). The file is a mapping:

    page: history-and-regulation      # the article that shows the timeline (its slug)
    events:
      - date: 1999-07-13              # a year (1962), a month (2015-12) or a day
        label: DEA places ketamine in Schedule III
        kind: control                 # research, approval or control (its marker shape)
        cite: [dea-1999-schedule-iii] # keys of references.yaml, as in [@key]

Output: the `Timeline` (events sorted by date, file order among equal dates) and diagnostics,
each at its `file:line:col` with a fix: an unknown or missing field, a date that is not a
year, month or calendar day, an unknown kind, an unknown reference key. Whether `page` names
an article is checked in resolve.py, once all pages are known; charts.py draws it.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import yaml

from kbgen.diagnostics import Diagnostic, did_you_mean
from kbgen.yamlload import YamlReader

TIMELINE_KEYS = ("page", "events")
EVENT_KEYS = ("date", "label", "kind", "cite")
#: what an event is; each kind has its own marker shape and colour in the chart
EVENT_KINDS = ("research", "approval", "control")
KIND_LABELS = {
    "research": "research",
    "approval": "approvals and appraisals of medicines",
    "control": "drug control and safety warnings",
}
_DATE_RE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
FIRST_YEAR, LAST_YEAR = 1800, 2100  #: a year outside these is a typing slip


@dataclass(frozen=True, slots=True)
class EventDate:
    """A year, a month or a day: as precise as the source is, never more."""

    year: int
    month: int | None = None
    day: int | None = None

    @property
    def text(self) -> str:
        """As a reader sees it: "1962", "Dec 2015", "13 Jul 1999"."""
        if self.month is None:
            return str(self.year)
        month = _MONTHS[self.month - 1]
        return f"{month} {self.year}" if self.day is None else f"{self.day} {month} {self.year}"

    @property
    def iso(self) -> str:
        """The `<time datetime>` form: 1962, 2015-12, 1999-07-13."""
        parts = [f"{self.year:04d}", *(f"{n:02d}" for n in (self.month, self.day) if n)]
        return "-".join(parts)

    @property
    def position(self) -> float:
        """Years since year 0, for placing it on an axis: a year sits at its middle."""
        if self.month is None:
            return self.year + 0.5
        start = dt.date(self.year, self.month, self.day or 1)
        return self.year + (start.timetuple().tm_yday - 1 + (0 if self.day else 15)) / 366


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    date: EventDate
    label: str
    kind: str  #: one of EVENT_KINDS
    cite: tuple[str, ...]  #: reference keys, in the order written
    line: int


@dataclass(frozen=True, slots=True)
class Timeline:
    page: str  #: the slug of the article that shows it
    events: tuple[TimelineEvent, ...]  #: by date
    path: str  #: the data file, for messages
    page_line: int
    page_col: int


def parse_date(text: str) -> EventDate | None:
    """"1962", "2015-12" or "1999-07-13" -> `EventDate`; None when it is none of those or
    not a real calendar date."""
    match = _DATE_RE.match(text.strip())
    if match is None:
        return None
    year = int(match[1])
    month = int(match[2]) if match[2] else None
    day = int(match[3]) if match[3] else None
    if not FIRST_YEAR <= year <= LAST_YEAR or (month is not None and not 1 <= month <= 12):
        return None
    if day is not None:
        try:
            dt.date(year, month or 1, day)
        except ValueError:
            return None
    return EventDate(year, month, day)


_Fields = dict[str, tuple[yaml.Node, yaml.Node]]


def load_timeline(
    text: str | None, path: str, reference_keys: frozenset[str]
) -> tuple[Timeline | None, list[Diagnostic]]:
    if text is None or not text.strip():
        return None, []
    reader = YamlReader(path)
    root = reader.compose(text)
    if root is None:
        return None, reader.diagnostics
    fields = reader.mapping(root, "timeline.yaml")
    if fields is None:
        return None, reader.diagnostics
    _unknown_fields(reader, fields, TIMELINE_KEYS, "timeline.yaml")
    for name, hint in (("page", "the slug of the article that shows it"),
                       ("events", "a list of dated events")):
        if name not in fields:
            reader.fail(root, f"timeline.yaml has no '{name}'", f"add '{name}:' ({hint})")
    if "page" not in fields or "events" not in fields:
        return None, reader.diagnostics
    page_node = fields["page"][1]
    page = reader.read_str(page_node, "'page'")
    items = reader.sequence(fields["events"][1], "'events'")
    if page is None or items is None:
        return None, reader.diagnostics
    events = [
        event
        for n, item in enumerate(items, start=1)
        if (event := _event(reader, item, n, reference_keys)) is not None
    ]
    events.sort(key=lambda event: event.date.position)  # stable: file order among equals
    line, col = reader.pos(page_node)
    return Timeline(page.strip(), tuple(events), path, line, col), reader.diagnostics


def _unknown_fields(
    reader: YamlReader, fields: _Fields, allowed: tuple[str, ...], where: str
) -> None:
    for name, (name_node, _) in fields.items():
        if name not in allowed:
            reader.fail(
                name_node,
                f"unknown field '{name}' in {where}",
                did_you_mean(name, allowed) or f"allowed fields: {', '.join(allowed)}",
            )


def _event(
    reader: YamlReader, node: yaml.Node, number: int, reference_keys: frozenset[str]
) -> TimelineEvent | None:
    where = f"timeline event {number}"
    fields = reader.mapping(node, where)
    if fields is None:
        return None
    _unknown_fields(reader, fields, EVENT_KEYS, where)
    missing = [name for name in ("date", "label", "cite") if name not in fields]
    for name in missing:
        reader.fail(node, f"{where} has no '{name}'", _MISSING_HINTS[name])
    if missing:
        return None
    date = _date(reader, fields["date"][1], where)
    label = reader.read_str(fields["label"][1], f"'label' of {where}")
    kind = _kind(reader, fields, where)
    cite = _cite(reader, fields["cite"][1], where, reference_keys)
    if date is None or label is None or kind is None or cite is None:
        return None
    return TimelineEvent(date, " ".join(label.split()), kind, cite, reader.pos(node)[0])


_MISSING_HINTS = {
    "date": "add 'date: YYYY', 'date: YYYY-MM' or 'date: YYYY-MM-DD'",
    "label": "add 'label: ...' (what happened, in a short sentence)",
    "cite": "add 'cite: [reference-key]' (a key of references.yaml)",
}


def _date(reader: YamlReader, node: yaml.Node, where: str) -> EventDate | None:
    text = reader.read_str(node, f"'date' of {where}")
    if text is None:
        return None
    date = parse_date(text)
    if date is None and _DATE_RE.match(text.strip()):
        reader.fail(
            node,
            f"'date' of {where}, {text!r}, is not a real calendar date",
            f"check the month and day (the year must lie between {FIRST_YEAR} and {LAST_YEAR})",
        )
    elif date is None:
        reader.fail(
            node,
            f"'date' of {where} must be a year, a month or a day (YYYY, YYYY-MM or "
            f"YYYY-MM-DD between {FIRST_YEAR} and {LAST_YEAR}), not {text!r}",
            "for example 1962, 2015-12 or 1999-07-13; give only as much as the source says",
        )
    return date


def _kind(reader: YamlReader, fields: _Fields, where: str) -> str | None:
    if "kind" not in fields:
        return "research"
    node = fields["kind"][1]
    kind = reader.read_str(node, f"'kind' of {where}")
    if kind is None:
        return None
    if kind not in EVENT_KINDS:
        reader.fail(
            node,
            f"'kind' of {where} must be one of {', '.join(EVENT_KINDS)}, not {kind!r}",
            did_you_mean(kind, EVENT_KINDS) or f"use one of {', '.join(EVENT_KINDS)}",
        )
        return None
    return kind


def _cite(
    reader: YamlReader, node: yaml.Node, where: str, reference_keys: frozenset[str]
) -> tuple[str, ...] | None:
    keys = reader.read_str_list(node, f"'cite' of {where}")
    if keys is None:
        return None
    if not keys:
        reader.fail(node, f"'cite' of {where} is empty", _MISSING_HINTS["cite"])
        return None
    items = node.value if isinstance(node, yaml.SequenceNode) else []
    known = True
    for key, item in zip(keys, items, strict=False):
        bare = key.strip().removeprefix("@")
        if bare not in reference_keys:
            reader.fail(
                item,
                f"unknown reference key '{key}' in {where}",
                did_you_mean(bare, reference_keys) or "add it to references.yaml first",
            )
            known = False
    return tuple(key.strip().removeprefix("@") for key in keys) if known else None


__all__ = [
    "EVENT_KINDS",
    "KIND_LABELS",
    "EventDate",
    "Timeline",
    "TimelineEvent",
    "load_timeline",
    "parse_date",
]
