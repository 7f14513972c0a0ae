"""The schema of `sections:` in config.yaml: each section and its typed front-matter fields.

Input: the top-level `Items` of config.yaml and the `Validator` reading them
(config_schema.py).
Output: `SectionSpec`s sorted by (order, id), each with its `FieldSpec`s (and a table field's
`ColumnSpec`s); every problem (a bad or duplicate id, an unknown field type, an enum without
values, `minimum` above `maximum`, ...) a `Diagnostic` at its config.yaml line and column.
"""

from __future__ import annotations

import yaml

from kbgen.config_schema import Items, Validator
from kbgen.config_types import ColumnSpec, FieldSpec, SectionSpec
from kbgen.diagnostics import did_you_mean, error

FIELD_TYPES = ("text", "enum", "number", "boolean", "table")
COLUMN_TYPES = ("text", "enum", "reference")  #: reference: a key of content/references.yaml
#: ids of generated pages' folders: a section of that name would collide with them
RESERVED_SECTION_IDS = frozenset(
    {"tags", "glossary", "bibliography", "search", "map", "static", "assets", "pagefind", "__kbgen"}
)
SECTION_KEYS = ("id", "title", "description", "order", "fields")
FIELD_KEYS = ("label", "type", "values", "required", "columns", "show", "minimum", "maximum")
COLUMN_KEYS = ("label", "type", "values", "required")


def read_sections(check: Validator, items: Items) -> tuple[SectionSpec, ...]:
    reader = check.reader
    if "sections" not in items:
        reader.diagnostics.append(
            error(
                reader.path,
                1,
                1,
                "missing required key 'sections'",
                "declare at least one section with an id and a title",
            )
        )
        return ()
    nodes = reader.sequence(items["sections"][1], "'sections'")
    if nodes is None:
        return ()
    sections: list[SectionSpec] = []
    seen: dict[str, int] = {}
    for position, node in enumerate(nodes, start=1):
        sub = reader.mapping(node, f"section {position}")
        if sub is None:
            continue
        check.unknown_keys(sub, SECTION_KEYS, f"section {position}")
        section_id = check.text(sub, "id", where=f"section {position}", at=node)
        title = check.text(sub, "title", where=f"section {position}", at=node)
        description = check.text(sub, "description", default="") or ""
        order = check.integer(sub, "order", position, minimum=-10_000)
        fields = _fields(check, sub["fields"][1]) if "fields" in sub else ()
        if section_id is None or title is None:
            continue
        id_node = sub["id"][1]
        if not _is_slug(section_id):
            reader.fail(
                id_node,
                f"section id '{section_id}' must be lowercase letters, digits and hyphens",
                "it is also the folder name under content/",
            )
            continue
        if section_id in RESERVED_SECTION_IDS:
            reader.fail(
                id_node,
                f"section id '{section_id}' is reserved for generated pages",
                "choose another id",
            )
            continue
        if section_id in seen:
            reader.fail(
                id_node,
                f"duplicate section id '{section_id}' (first declared on line {seen[section_id]})",
                "give each section a unique id",
            )
            continue
        seen[section_id] = reader.pos(id_node)[0]
        sections.append(SectionSpec(section_id, title, description, order, fields))
    return tuple(sorted(sections, key=lambda s: (s.order, s.id)))


def _fields(check: Validator, node: yaml.Node) -> tuple[FieldSpec, ...]:
    reader = check.reader
    items = reader.mapping(node, "'fields'")
    if items is None:
        return ()
    fields: list[FieldSpec] = []
    for name, (key_node, value_node) in items.items():
        if not _is_identifier(name):
            reader.fail(
                key_node,
                f"field name '{name}' must be lowercase letters, digits and _",
                "for example: time_to_peak",
            )
            continue
        sub = reader.mapping(value_node, f"field '{name}'")
        if sub is None:
            continue
        check.unknown_keys(sub, FIELD_KEYS, f"field '{name}'")
        typed = _label_and_type(
            check, sub, name, "field", FIELD_TYPES,
            "dates are not field types; use text, or table for a list of records",
        )
        if typed is None:
            continue
        label, kind = typed
        values = _enum_values(check, sub, key_node, name) if kind == "enum" else ()
        if values is None:
            continue
        columns: tuple[ColumnSpec, ...] = ()
        if kind == "table":
            found = _columns(check, sub, key_node, name)
            if found is None:
                continue
            columns = found
        elif "columns" in sub:
            reader.fail(
                sub["columns"][0],
                f"'columns' is only for table fields; '{name}' is a {kind} field",
                "remove 'columns', or set type: table",
            )
        required = check.boolean(sub, "required", True)
        show = check.boolean(sub, "show", True)
        bounds = _number_bounds(check, sub, name, kind)
        if bounds is None:
            continue
        fields.append(FieldSpec(name, label, kind, values, required, columns, show, *bounds))
    return tuple(fields)


def _label_and_type(
    check: Validator, sub: Items, name: str, what: str, types: tuple[str, ...], hint: str
) -> tuple[str, str] | None:
    """A field's or column's `label` (default: its name, capitalised) and `type` (default:
    text); None when the type is not one of `types` (reported, with `hint` when no known type
    is close)."""
    label = check.text(sub, "label", default=name.replace("_", " ").capitalize()) or name
    kind = check.text(sub, "type", default="text") or "text"
    if kind not in types:
        check.reader.fail(
            sub["type"][1],
            f"{what} type must be one of {', '.join(types)}, not '{kind}'",
            did_you_mean(kind, types) or hint,
        )
        return None
    return label, kind


def _number_bounds(
    check: Validator, sub: Items, name: str, kind: str
) -> tuple[float | None, float | None] | None:
    """A number field's `minimum` and `maximum` (None: unbounded); None when they are wrong."""
    found: list[float | None] = []
    for key in ("minimum", "maximum"):
        if key not in sub:
            found.append(None)
            continue
        if kind != "number":
            check.reader.fail(
                sub[key][0],
                f"'{key}' is only for number fields; '{name}' is a {kind} field",
                f"remove '{key}', or set type: number",
            )
            return None
        value = check.reader.read_number(sub[key][1], f"'{key}'")
        if value is None:
            return None
        found.append(value)
    low, high = found
    if low is not None and high is not None and low > high:
        check.reader.fail(
            sub["maximum"][1],
            f"'maximum' ({high:g}) is below 'minimum' ({low:g}) in field '{name}'",
            "swap the two values",
        )
        return None
    return low, high


def _enum_values(
    check: Validator,
    sub: Items,
    key_node: yaml.Node,
    name: str,
) -> tuple[str, ...] | None:
    """An enum's allowed values; None (reported) when they are missing."""
    if "values" not in sub:
        check.reader.fail(
            key_node,
            f"enum field '{name}' needs 'values'",
            "list the allowed values: values: [low, high]",
        )
        return None
    listed = check.reader.read_str_list(sub["values"][1], f"'{name}.values'")
    return tuple(listed or ())


def _columns(
    check: Validator,
    sub: Items,
    key_node: yaml.Node,
    field_name: str,
) -> tuple[ColumnSpec, ...] | None:
    """A table field's `columns`: name -> {label, type: text|enum|reference, values, required}."""
    reader = check.reader
    if "columns" not in sub:
        reader.fail(
            key_node,
            f"table field '{field_name}' needs 'columns'",
            "declare them: columns: {drug: {label: Drug, type: text}}",
        )
        return None
    items = reader.mapping(sub["columns"][1], f"'{field_name}.columns'")
    if items is None:
        return None
    columns: list[ColumnSpec] = []
    before = len(reader.diagnostics)
    for name, (column_key, column_node) in items.items():
        where = f"column '{field_name}.{name}'"
        if not _is_identifier(name):
            reader.fail(
                column_key,
                f"column name '{name}' must be lowercase letters, digits and _",
                "for example: label_says",
            )
            continue
        spec = reader.mapping(column_node, where)
        if spec is None:
            continue
        check.unknown_keys(spec, COLUMN_KEYS, where)
        typed = _label_and_type(
            check, spec, name, "column", COLUMN_TYPES, "use text for anything else"
        )
        if typed is None:
            continue
        label, kind = typed
        values = (
            _enum_values(check, spec, column_key, f"{field_name}.{name}") if kind == "enum" else ()
        )
        if values is None:
            continue
        required = check.boolean(spec, "required", True)
        columns.append(ColumnSpec(name, label, kind, values, required))
    if not columns and len(reader.diagnostics) == before:
        reader.fail(
            sub["columns"][1],
            f"table field '{field_name}' declares no columns",
            "declare at least one column",
        )
        return None
    return tuple(columns)


def _is_slug(text: str) -> bool:
    return (
        bool(text)
        and all(c.islower() or c.isdigit() or c == "-" for c in text)
        and text.isascii()
        and not text.startswith("-")
    )


def _is_identifier(text: str) -> bool:
    return bool(text) and text.isascii() and text.replace("_", "a").isalnum() and text.islower()
