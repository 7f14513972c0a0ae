"""Split a page into its `---` YAML front matter and Markdown body; validate the front matter.

Input: the page text, its path for messages, its section's declared fields, today's date.
Output: `FrontMatter` (or None), the body, the body's first file line, and diagnostics that
point at the offending key or value (file line and column, not YAML-block-relative).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass

import yaml

from kbgen.config_types import ColumnSpec, FieldSpec, SectionSpec
from kbgen.diagnostics import Diagnostic, did_you_mean, error, warning
from kbgen.model import MAX_SLUG_LENGTH, CiteRef, FieldValue, FrontMatter, TableValue, slugify
from kbgen.yamlload import YamlReader

REQUIRED_KEYS = ("title", "summary", "last_reviewed")
STANDARD_KEYS = (
    "title",
    "summary",
    "in_short",
    "last_reviewed",
    "tags",
    "aliases",
    "related",
    "draft",
    "order",
    "reviewed_by",
    "section",
)
IN_SHORT_MAX_CHARS = 600  #: longer than four plain sentences: a warning, not an error
#: What makes `in_short` more than plain text. It is shown as typed, used as the meta
#: description and in link previews, so a citation or link there could never work.
_PLAIN = "write plain text; markup is not rendered here"
_LINK_FROM_BODY = "link from the body; the In short is plain text"
_IN_SHORT_MARKUP = (
    (re.compile(r"\[@"), "a citation ([@key])", "cite the source in the body, not here"),
    (re.compile(r"\[\["), "a wiki link ([[...]])", _LINK_FROM_BODY),
    (re.compile(r"\[[^\]\n]*\]\("), "a Markdown link ([text](url))", _LINK_FROM_BODY),
    (re.compile(r"<[A-Za-z/!]"), "HTML", _PLAIN),
    (re.compile(r"`"), "code (`...`)", _PLAIN),
    (re.compile(r"\*\*|__"), "emphasis (**...**)", _PLAIN),
)
FENCE = "---"
CLOSING_FENCES = ("---", "...")


@dataclass(frozen=True, slots=True)
class SplitPage:
    yaml_text: str
    body: str
    yaml_line: int  #: 0-based file line of the first YAML line
    body_line: int  #: 1-based file line of the first body line


def split_front_matter(text: str, path: str) -> tuple[SplitPage | None, list[Diagnostic]]:
    """Separate the front matter block; a missing or unclosed block is an error."""
    lines = text.split("\n")
    if not lines or lines[0].rstrip("\r").rstrip() != FENCE:
        first = lines[0].strip() if lines else ""
        hint = "start the file with a line '---', then title/summary/last_reviewed, then '---'"
        if not text.strip():
            return None, [error(path, 1, 1, "the file is empty", hint)]
        return None, [
            error(
                path,
                1,
                1,
                f"missing front matter (the first line is '{first[:40]}', not '---')",
                hint,
            )
        ]
    for index in range(1, len(lines)):
        if lines[index].rstrip("\r").rstrip() in CLOSING_FENCES:
            yaml_text = "\n".join(lines[1:index])
            body = "\n".join(lines[index + 1 :])
            return SplitPage(yaml_text, body, 1, index + 2), []
    return None, [
        error(
            path,
            1,
            1,
            "front matter is not closed: no '---' line follows the opening '---'",
            "add a line '---' after the last front-matter key",
        )
    ]


def parse_front_matter(
    split: SplitPage,
    path: str,
    section: SectionSpec | None,
    today: dt.date,
    review_interval_days: int,
    is_article: bool,
) -> tuple[FrontMatter | None, list[Diagnostic]]:
    reader = YamlReader(path, line_offset=split.yaml_line)
    node = reader.compose(split.yaml_text)
    if node is None:
        if not reader.diagnostics:
            reader.diagnostics.append(
                error(path, 2, 1, "front matter is empty", "add title, summary and last_reviewed")
            )
        return None, reader.diagnostics
    items = reader.mapping(node, "front matter")
    if items is None:
        return None, reader.diagnostics
    diagnostics: list[Diagnostic] = []
    fields_by_name = {f.name: f for f in section.fields} if section and is_article else {}
    allowed = STANDARD_KEYS + tuple(fields_by_name)
    for key, (key_node, _) in items.items():
        if key not in allowed:
            line, col = reader.pos(key_node)
            hint = did_you_mean(key, allowed) or f"known keys: {', '.join(allowed)}"
            diagnostics.append(warning(path, line, col, f"unknown front-matter key '{key}'", hint))
    for key in REQUIRED_KEYS:
        if key not in items and (is_article or key != "last_reviewed"):
            diagnostics.append(
                error(
                    path,
                    1,
                    1,
                    f"missing required front-matter key '{key}'",
                    f"add a line '{key}: ...' between the '---' lines",
                )
            )

    def text(key: str) -> str | None:
        return reader.read_str(items[key][1], f"'{key}'") if key in items else None

    def text_list(key: str) -> tuple[str, ...]:
        values = reader.read_str_list(items[key][1], f"'{key}'") if key in items else []
        return tuple(v.strip() for v in values or ())

    title = (text("title") or "").strip()
    summary = " ".join((text("summary") or "").split())
    in_short = _in_short(reader, items, split.yaml_text, diagnostics)
    last_reviewed = (
        reader.read_date(items["last_reviewed"][1], "'last_reviewed'")
        if "last_reviewed" in items
        else None
    )
    if last_reviewed is not None:
        diagnostics += _review_date_problems(
            reader, items["last_reviewed"][1], last_reviewed, today, review_interval_days
        )
    tags = text_list("tags")
    for tag_problem in _tag_problems(reader, items, tags):
        diagnostics.append(tag_problem)
    draft = bool(reader.read_bool(items["draft"][1], "'draft'")) if "draft" in items else False
    order = reader.read_int(items["order"][1], "'order'") if "order" in items else None
    if "section" in items and section is not None:
        declared = text("section")
        if declared is not None and declared != section.id:
            reader.fail(
                items["section"][1],
                f"'section: {declared}' does not match the folder '{section.id}'",
                "move the file or fix the section key",
            )
    field_citations: list[CiteRef] = []
    fields = _typed_fields(reader, items, fields_by_name, path, diagnostics, field_citations)
    # Read every key before deciding: all of a file's problems are reported in one run.
    aliases = text_list("aliases")
    related = text_list("related")
    reviewed_by = (
        text_list("reviewed_by")
        if "reviewed_by" in items and isinstance(items["reviewed_by"][1], yaml.SequenceNode)
        else ((text("reviewed_by") or "").strip(),)
        if "reviewed_by" in items
        else ()
    )
    positions = {key: reader.pos(key_node) for key, (key_node, _) in items.items()}
    diagnostics = reader.diagnostics + diagnostics
    if any(d.is_error for d in diagnostics):
        return None, diagnostics
    return FrontMatter(
        title=title,
        summary=summary,
        in_short=in_short,
        last_reviewed=last_reviewed,
        tags=tuple(dict.fromkeys(tags)),
        aliases=aliases,
        related=related,
        draft=draft,
        order=order,
        reviewed_by=reviewed_by,
        fields=fields,
        field_citations=tuple(field_citations),
        key_positions=positions,
    ), diagnostics


def _in_short(
    reader: YamlReader,
    items: Mapping[str, tuple[yaml.Node, yaml.Node]],
    yaml_text: str,
    diagnostics: list[Diagnostic],
) -> str:
    """The optional plain-language `in_short`, whitespace folded; "" when absent.

    Markup is an error at the offending characters (found in the YAML source, so the
    position is right for quoted and block scalars alike); a very long one is a warning.
    """
    if "in_short" not in items:
        return ""
    node = items["in_short"][1]
    value = reader.read_str(node, "'in_short'")
    if value is None:
        return ""
    written = yaml_text[node.start_mark.index : node.end_mark.index]
    for pattern, what, hint in _IN_SHORT_MARKUP:
        found = pattern.search(written)
        if found is not None and pattern.search(value) is not None:
            at = node.start_mark.index + found.start()
            line = reader.line_offset + yaml_text.count("\n", 0, at) + 1
            col = at - (yaml_text.rfind("\n", 0, at) + 1) + 1
            reader.diagnostics.append(
                error(reader.path, line, col, f"'in_short' is plain text; it holds {what}", hint)
            )
    folded = " ".join(value.split())
    if len(folded) > IN_SHORT_MAX_CHARS:
        line, col = reader.pos(node)
        diagnostics.append(
            warning(
                reader.path,
                line,
                col,
                f"'in_short' is {len(folded)} characters; keep it under {IN_SHORT_MAX_CHARS} "
                "(2-4 short sentences)",
                "move detail into the body",
            )
        )
    return folded


def _review_date_problems(
    reader: YamlReader, node: yaml.Node, reviewed: dt.date, today: dt.date, interval: int
) -> list[Diagnostic]:
    line, col = reader.pos(node)
    if reviewed > today:
        return [
            error(
                reader.path,
                line,
                col,
                f"last_reviewed {reviewed.isoformat()} is in the future",
                f"use the date the article was actually reviewed (today is {today.isoformat()})",
            )
        ]
    due = reviewed + dt.timedelta(days=interval)
    if due < today:
        return [
            warning(
                reader.path,
                line,
                col,
                f"review overdue: last reviewed {reviewed.isoformat()}, due {due.isoformat()}",
                "review the article and update last_reviewed",
            )
        ]
    return []


def _tag_problems(
    reader: YamlReader, items: Mapping[str, tuple[yaml.Node, yaml.Node]], tags: tuple[str, ...]
) -> list[Diagnostic]:
    if "tags" not in items:
        return []
    problems = []
    line, col = reader.pos(items["tags"][1])
    for tag in tags:
        if not tag or any(c in tag for c in "/\\#?%") or tag in (".", ".."):
            problems.append(
                error(
                    reader.path,
                    line,
                    col,
                    f"tag '{tag}' cannot be used in a URL",
                    "use letters, digits, spaces and hyphens",
                )
            )
        elif len(slugify(tag)) > MAX_SLUG_LENGTH:
            # Its page is tags/<slug>/index.html (or tags/<slug>.html): the name must fit.
            problems.append(
                error(
                    reader.path,
                    line,
                    col,
                    f"tag '{tag[:40]}...' is too long: its page's file name would have "
                    f"{len(slugify(tag))} characters, more than a file name can have",
                    f"use a tag of at most {MAX_SLUG_LENGTH} letters and digits",
                )
            )
    return problems


def _bounded(
    reader: YamlReader, node: yaml.Node, spec: FieldSpec, value: float | None
) -> float | None:
    """`value` when it lies within the field's minimum and maximum; else reported, None."""
    if value is None:
        return None
    low, high = spec.minimum, spec.maximum
    if (low is not None and value < low) or (high is not None and value > high):
        allowed = " to ".join(f"{b:g}" for b in (low, high) if b is not None)
        reader.fail(
            node,
            f"'{spec.name}' must be {_range_words(low, high)}, not {value:g}",
            f"check the figure against its source (allowed: {allowed})",
        )
        return None
    return value


def _range_words(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"between {low:g} and {high:g}"
    return f"at least {low:g}" if low is not None else f"at most {high:g}"


def _typed_fields(
    reader: YamlReader,
    items: Mapping[str, tuple[yaml.Node, yaml.Node]],
    fields_by_name: Mapping[str, FieldSpec],
    path: str,
    diagnostics: list[Diagnostic],
    citations: list[CiteRef],
) -> dict[str, FieldValue]:
    values: dict[str, FieldValue] = {}
    for name, spec in fields_by_name.items():
        if name not in items:
            if spec.required:
                allowed = f" (one of: {', '.join(spec.values)})" if spec.values else ""
                diagnostics.append(
                    error(
                        path,
                        1,
                        1,
                        f"missing field '{name}' required by this section",
                        f"add '{name}: ...'{allowed}",
                    )
                )
            continue
        node = items[name][1]
        value: FieldValue | None
        if spec.type == "number":
            value = _bounded(reader, node, spec, reader.read_number(node, f"'{name}'"))
        elif spec.type == "boolean":
            value = reader.read_bool(node, f"'{name}'")
        elif spec.type == "table":
            value = _table(reader, node, spec, citations)
        else:
            value = reader.read_str(node, f"'{name}'")
            if value is not None:
                value = value.strip()
            if spec.type == "enum" and value is not None and value not in spec.values:
                hint = did_you_mean(value, spec.values, cutoff=0.5)
                reader.fail(
                    node,
                    f"'{name}' must be one of: {', '.join(spec.values)}; not '{value}'",
                    hint or "use one of the values declared in config.yaml",
                )
                value = None
        if value is not None:
            values[name] = value
    return values


def _table(
    reader: YamlReader, node: yaml.Node, spec: FieldSpec, citations: list[CiteRef]
) -> TableValue | None:
    """A `table` field: a list of records, every cell checked against its column.

    Each problem is reported at its cell (or at the row, for a missing cell), all in one
    run; `reference` cells are added to `citations`, so resolve checks their keys and counts
    them as citations like `[@key]` in the body.
    """
    what = f"'{spec.name}'"
    rows = reader.sequence(node, what)
    if rows is None:
        return None
    if not rows and spec.required:
        reader.fail(node, f"{what} needs at least one row", "add rows as a YAML list of records")
        return None
    columns = {column.name: column for column in spec.columns}
    before = len(reader.diagnostics)
    table: list[tuple[tuple[str, str], ...]] = []
    for number, row_node in enumerate(rows, start=1):
        where = f"row {number} of {what}"
        cells = reader.mapping(row_node, where)
        if cells is None:
            continue
        for key, (key_node, _) in cells.items():
            if key not in columns:
                hint = did_you_mean(key, list(columns)) or f"columns: {', '.join(columns)}"
                reader.fail(key_node, f"unknown column '{key}' in {where}", hint)
        row: list[tuple[str, str]] = []
        for column in spec.columns:
            if column.name not in cells:
                if column.required:
                    reader.fail(
                        row_node,
                        f"{where} has no '{column.name}' ({column.label})",
                        f"add '{column.name}: ...' to the row",
                    )
                continue
            cell = _cell(reader, cells[column.name][1], column, where, citations)
            if cell is not None:
                row.append((column.name, cell))
        table.append(tuple(row))
    return None if len(reader.diagnostics) > before else tuple(table)


def _cell(
    reader: YamlReader,
    node: yaml.Node,
    column: ColumnSpec,
    where: str,
    citations: list[CiteRef],
) -> str | None:
    value = reader.read_str(node, f"'{column.name}' in {where}")
    if value is None:
        return None
    value = " ".join(value.split())
    if column.type == "enum" and value not in column.values:
        reader.fail(
            node,
            f"'{column.name}' in {where} must be one of: {', '.join(column.values)}; "
            f"not '{value}'",
            did_you_mean(value, column.values, cutoff=0.5)
            or "use one of the values declared in config.yaml",
        )
        return None
    if column.type == "reference":
        key = value.removeprefix("[").removesuffix("]").removeprefix("@")
        if key != value or not key or any(c.isspace() or c in "[]@;," for c in key):
            reader.fail(
                node,
                f"'{column.name}' in {where} must be one reference key, not '{value}'",
                f"write the bare key from content/references.yaml, e.g. '{key or 'smith-2020'}'"
                if key and not any(c.isspace() or c in "[]@;," for c in key)
                else "write one bare key from content/references.yaml, e.g. smith-2020",
            )
            return None
        line, col = reader.pos(node)
        citations.append(CiteRef(value, None, line, col))
    return value
