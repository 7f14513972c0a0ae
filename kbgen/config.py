"""Load and validate `config.yaml` once, at the edge, into a frozen `Config`.

Input: the config file path (its folder is the project root) and CLI overrides.
Output: `Config` or None, plus every problem found (not just the first), each with the config
line, and a "did you mean" hint for unknown keys. Path sanity lives here too: an output folder
that a build could destroy something with (`/`, home, the project, sources) is refused before
anything else runs.
"""

from __future__ import annotations

import hashlib
import os
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from kbgen.diagnostics import (
    Diagnostic,
    did_you_mean,
    error,
    no_file_error,
    sorted_diagnostics,
)
from kbgen.yamlload import YamlReader

MARKER_FILE = ".kbgen-site"
RAW_HTML_MODES = ("escape", "sanitize", "allow")
FIELD_TYPES = ("text", "enum", "number", "boolean", "table")
COLUMN_TYPES = ("text", "enum", "reference")  #: reference: a key of content/references.yaml
DEFAULT_RENDER_TIME_LIMIT = 30  #: seconds; pages render in milliseconds, loops never end
MAX_RENDER_TIME_LIMIT = 86_400
MAX_REVIEW_INTERVAL_DAYS = 36_500  #: a century; longer would overflow date arithmetic
RESERVED_SECTION_IDS = frozenset(
    {"tags", "glossary", "bibliography", "search", "map", "static", "assets", "pagefind", "__kbgen"}
)


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    """One column of a `table` field: every row gives it a cell (unless not required)."""

    name: str
    label: str
    type: str  #: one of COLUMN_TYPES
    values: tuple[str, ...] = ()  #: allowed values (enum only)
    required: bool = True


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """A typed front-matter field that every article of a section carries."""

    name: str
    label: str
    type: str  #: one of FIELD_TYPES
    values: tuple[str, ...] = ()  #: allowed values, in display/sort order (enum only)
    required: bool = True
    columns: tuple[ColumnSpec, ...] = ()  #: the record's columns (table only)
    #: False: data for a chart (charts.py) only, not a key fact or a section-table column
    show: bool = True
    minimum: float | None = None  #: the smallest value allowed (number only)
    maximum: float | None = None  #: the largest value allowed (number only)


@dataclass(frozen=True, slots=True)
class SectionSpec:
    id: str
    title: str
    description: str
    order: int
    fields: tuple[FieldSpec, ...] = ()

    def field_named(self, name: str) -> FieldSpec | None:
        return next((f for f in self.fields if f.name == name), None)


@dataclass(frozen=True, slots=True)
class MarkdownOptions:
    raw_html: str = "escape"  #: escape | sanitize | allow
    toc_depth: int = 3  #: deepest heading level in the table of contents
    glossary_tooltips: bool = True  #: mark the first use of each glossary term

    def key(self) -> str:
        return f"{self.raw_html}|{self.toc_depth}|{self.glossary_tooltips}"


@dataclass(frozen=True, slots=True)
class ReadabilityOptions:
    """`readability:` thresholds; `check` warns above them (see readability.py)."""

    in_short_max_grade: float = 8.0  #: Flesch-Kincaid grade of the In short
    body_max_grade: float = 12.0  #: Flesch-Kincaid grade of the body prose


@dataclass(frozen=True, slots=True)
class Config:
    path: Path  #: the config file
    root: Path  #: the project root (the config file's folder)
    title: str
    description: str
    language: str
    base_url: str  #: "" when unset; otherwise ends with "/"
    output_dir: Path
    content_dir: Path
    templates_dir: Path
    static_dir: Path
    cache_dir: Path
    directory_urls: bool
    review_interval_days: int
    disclaimer: str
    sections: tuple[SectionSpec, ...]
    markdown: MarkdownOptions
    feed_entries: int
    search: bool
    extra: Mapping[str, str] = field(default_factory=dict)
    digest: str = ""  #: hash of the config file and overrides: "config changed" is one compare
    cache_dir_at: tuple[int, int] | None = None  #: cache_dir's line and column, if set
    output_setting: OutputSetting | None = None  #: where output_dir was set, for messages
    #: reading-grade limits for `check`; None (no `readability:` key): not checked
    readability: ReadabilityOptions | None = None
    render_time_limit: float = DEFAULT_RENDER_TIME_LIMIT  #: seconds one page may take to render

    def section(self, section_id: str) -> SectionSpec | None:
        return next((s for s in self.sections if s.id == section_id), None)

    def rel(self, path: Path) -> str:
        """A path as shown in messages: relative to the project root when inside it."""
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)


TOP_LEVEL_KEYS = (
    "title",
    "description",
    "language",
    "base_url",
    "output_dir",
    "content_dir",
    "templates_dir",
    "static_dir",
    "cache_dir",
    "render_time_limit",
    "directory_urls",
    "review_interval_days",
    "disclaimer",
    "markdown",
    "feed",
    "sections",
    "search",
    "extra",
    "readability",
)
SECTION_KEYS = ("id", "title", "description", "order", "fields")
FIELD_KEYS = ("label", "type", "values", "required", "columns", "show", "minimum", "maximum")
COLUMN_KEYS = ("label", "type", "values", "required")
MARKDOWN_KEYS = ("raw_html", "toc_depth", "glossary_tooltips")
FEED_KEYS = ("entries",)
READABILITY_KEYS = ("in_short_max_grade", "body_max_grade")
MAX_GRADE = 30.0  #: beyond any real text: a typo such as 80 for 8.0


@dataclass
class _Validator:
    reader: YamlReader
    root: Path

    def unknown_keys(
        self, items: Mapping[str, tuple[yaml.Node, yaml.Node]], allowed: tuple[str, ...], where: str
    ) -> None:
        for key, (key_node, _) in items.items():
            if key not in allowed:
                hint = did_you_mean(key, allowed) or f"allowed keys: {', '.join(allowed)}"
                self.reader.fail(key_node, f"unknown key '{key}' in {where}", hint)

    def text(
        self,
        items: Mapping[str, tuple[yaml.Node, yaml.Node]],
        key: str,
        default: str | None = None,
        where: str = "config.yaml",
        at: yaml.Node | None = None,
    ) -> str | None:
        """A string value; a missing required key is reported at its mapping (`at`)."""
        if key not in items:
            if default is None:
                line, col = self.reader.pos(at) if at is not None else (1, 1)
                self.reader.diagnostics.append(
                    error(
                        self.reader.path,
                        line,
                        col,
                        f"missing required key '{key}' in {where}",
                        f"add a line '{key}: ...'",
                    )
                )
            return default
        return self.reader.read_str(items[key][1], f"'{key}'", allow_empty=default is not None)

    def boolean(
        self, items: Mapping[str, tuple[yaml.Node, yaml.Node]], key: str, default: bool
    ) -> bool:
        if key not in items:
            return default
        value = self.reader.read_bool(items[key][1], f"'{key}'")
        return default if value is None else value

    def integer(
        self,
        items: Mapping[str, tuple[yaml.Node, yaml.Node]],
        key: str,
        default: int,
        minimum: int,
        maximum: int | None = None,
    ) -> int:
        if key not in items:
            return default
        value = self.reader.read_int(items[key][1], f"'{key}'", minimum=minimum, maximum=maximum)
        return default if value is None else value

    def path(
        self, items: Mapping[str, tuple[yaml.Node, yaml.Node]], key: str, default: str
    ) -> Path:
        return (self.root / self.written_path(items, key, default)).resolve()

    def written_path(
        self, items: Mapping[str, tuple[yaml.Node, yaml.Node]], key: str, default: str
    ) -> str:
        """The path as the author wrote it (relative to the project root, or absolute)."""
        return self.text(items, key, default=default) or default


def load_config(
    config_path: Path, output_override: Path | None = None
) -> tuple[Config | None, list[Diagnostic]]:
    """Read and validate the config file; every problem is returned, never raised."""
    config, diagnostics = _load_config(config_path, output_override)
    return config, sorted_diagnostics(diagnostics)


def _load_config(
    config_path: Path, output_override: Path | None
) -> tuple[Config | None, list[Diagnostic]]:
    given = str(config_path)
    config_path = config_path.absolute()
    shown = config_path.name
    try:
        raw = config_path.read_bytes()
    except FileNotFoundError:
        return None, [
            no_file_error(
                given,
                "config file not found",
                "run the command in the project folder, or pass --config PATH/config.yaml",
            )
        ]
    except IsADirectoryError:
        return None, [
            no_file_error(
                given,
                "the config path is a folder",
                "pass the config file: --config PATH/config.yaml",
            )
        ]
    except OSError as exc:
        return None, [
            no_file_error(
                given,
                f"cannot read the config file: {exc.strerror}",
                "check the file's permissions",
            )
        ]
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        return None, [
            error(
                shown,
                line,
                col,
                f"config file is not valid UTF-8 (byte 0x{raw[exc.start]:02x})",
                "save the file as UTF-8",
            )
        ]
    reader = YamlReader(shown)
    root_node = reader.compose(text)
    if root_node is None:
        if not reader.diagnostics:
            reader.diagnostics.append(
                error(shown, 1, 1, "config file is empty", "add at least 'title:' and 'sections:'")
            )
        return None, reader.diagnostics
    items = reader.mapping(root_node, "the config file")
    if items is None:
        return None, reader.diagnostics
    root = config_path.parent.resolve()
    check = _Validator(reader, root)
    check.unknown_keys(items, TOP_LEVEL_KEYS, "config.yaml")

    title = check.text(items, "title", at=root_node)
    description = check.text(items, "description", default="") or ""
    language = check.text(items, "language", default="en") or "en"
    if not LANGUAGE_TAG_RE.fullmatch(language):
        # It lands in <html lang="..."> and in Pagefind's index: a language tag or nothing.
        reader.fail(
            items["language"][1],
            f"language must be a language tag such as 'en' or 'pt-BR', not '{language}'",
            "use letters, digits and hyphens: a BCP 47 tag (en, de, pt-BR, zh-Hant)",
        )
    base_url = (check.text(items, "base_url", default="") or "").strip()
    if base_url:
        problem = _base_url_problem(base_url)
        if problem is not None:
            reader.fail(
                items["base_url"][1],
                f"base_url '{base_url}' {problem}",
                "page URLs are made by appending their paths to it: write the site's root, "
                "for example https://kb.example.org/",
            )
    if base_url and not base_url.endswith("/"):
        base_url += "/"
    output_written = (
        str(output_override)
        if output_override is not None
        else check.written_path(items, "output_dir", "site")
    )
    output_dir = (
        output_override.absolute()
        if output_override is not None
        else (root / output_written).resolve()
    )
    content_dir = check.path(items, "content_dir", "content")
    templates_dir = check.path(items, "templates_dir", "templates")
    static_dir = check.path(items, "static_dir", "static")
    cache_dir = check.path(items, "cache_dir", ".kbgen-cache")
    directory_urls = check.boolean(items, "directory_urls", True)
    review_interval_days = check.integer(
        items, "review_interval_days", 365, minimum=1, maximum=MAX_REVIEW_INTERVAL_DAYS
    )
    render_time_limit = check.integer(
        items, "render_time_limit", DEFAULT_RENDER_TIME_LIMIT, minimum=1,
        maximum=MAX_RENDER_TIME_LIMIT,
    )
    disclaimer = check.text(items, "disclaimer", default="") or ""
    search = check.boolean(items, "search", True)
    markdown = _markdown_options(check, items)
    feed_entries = _feed_entries(check, items)
    sections = _sections(check, items)
    extra = _extra(check, items)
    readability = _readability(check, items)

    diagnostics = list(reader.diagnostics)
    for name, directory in (("content_dir", content_dir), ("templates_dir", templates_dir)):
        if not directory.is_dir():
            line_col = reader.pos(items[name][1]) if name in items else (1, 1)
            diagnostics.append(
                error(
                    shown,
                    *line_col,
                    f"{name} '{check_rel(directory, root)}' is not a folder",
                    "create it or fix the path in config.yaml",
                )
            )
    output_setting = OutputSetting(
        output_written,
        shown,
        reader.pos(items["output_dir"][1]) if "output_dir" in items else None,
        from_cli=output_override is not None,
    )
    output_refused = check_output_dir(
        output_override.absolute() if output_override is not None else root / output_written,
        root,
        (content_dir, templates_dir, static_dir),
        output_setting,
    )
    diagnostics += output_refused
    cache_at = reader.pos(items["cache_dir"][1]) if "cache_dir" in items else None
    diagnostics += check_cache_dir(
        cache_dir,
        check.written_path(items, "cache_dir", ".kbgen-cache"),
        root,
        (content_dir, templates_dir, static_dir),
        None if output_refused else output_dir,  # one error for a misplaced output folder
        OutputSetting("", shown, cache_at),
    )
    if diagnostics or title is None:
        return None, diagnostics
    digest = hashlib.sha256(raw + str(output_dir).encode()).hexdigest()
    config = Config(
        path=config_path,
        root=root,
        title=title,
        description=description,
        language=language,
        base_url=base_url,
        output_dir=output_dir,
        content_dir=content_dir,
        templates_dir=templates_dir,
        static_dir=static_dir,
        cache_dir=cache_dir,
        directory_urls=directory_urls,
        review_interval_days=review_interval_days,
        disclaimer=disclaimer,
        sections=sections,
        markdown=markdown,
        feed_entries=feed_entries,
        search=search,
        extra=extra,
        cache_dir_at=cache_at,
        render_time_limit=render_time_limit,
        digest=digest,
        output_setting=output_setting,
        readability=readability,
    )
    return config, []


#: a BCP 47 language tag, loosely: a 2-3 letter language, then subtags of letters/digits
LANGUAGE_TAG_RE = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*")


def _base_url_problem(url: str) -> str | None:
    """Why `url` cannot be the site's base URL (page paths are appended to it), or None."""
    if not url.startswith(("http://", "https://")):
        return "must start with http:// or https://"
    if any(c.isspace() or ord(c) < 0x20 or c in '"<>\\`{}|^' for c in url):
        return "must not contain spaces, quotes or control characters (write %20 for a space)"
    if "?" in url or "#" in url:
        return "must not have a ?query or #fragment"
    try:
        parts = urllib.parse.urlsplit(url)
        _ = parts.port  # raises for a port that is not a number in range
    except ValueError:
        return "is not a valid URL"
    if not parts.hostname:
        return "must name a host"
    return None


def check_rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix() or "."
    except ValueError:
        return str(path)


def _markdown_options(
    check: _Validator, items: Mapping[str, tuple[yaml.Node, yaml.Node]]
) -> MarkdownOptions:
    if "markdown" not in items:
        return MarkdownOptions()
    sub = check.reader.mapping(items["markdown"][1], "'markdown'")
    if sub is None:
        return MarkdownOptions()
    check.unknown_keys(sub, MARKDOWN_KEYS, "'markdown'")
    raw_html = check.text(sub, "raw_html", default="escape") or "escape"
    if raw_html not in RAW_HTML_MODES:
        check.reader.fail(
            sub["raw_html"][1],
            f"markdown.raw_html must be one of {', '.join(RAW_HTML_MODES)}, not '{raw_html}'",
            did_you_mean(raw_html, RAW_HTML_MODES) or "use 'escape' (the default)",
        )
        raw_html = "escape"
    toc_depth = check.integer(sub, "toc_depth", 3, minimum=1, maximum=6)
    tooltips = check.boolean(sub, "glossary_tooltips", True)
    return MarkdownOptions(raw_html=raw_html, toc_depth=toc_depth, glossary_tooltips=tooltips)


def _feed_entries(check: _Validator, items: Mapping[str, tuple[yaml.Node, yaml.Node]]) -> int:
    if "feed" not in items:
        return 20
    sub = check.reader.mapping(items["feed"][1], "'feed'")
    if sub is None:
        return 20
    check.unknown_keys(sub, FEED_KEYS, "'feed'")
    return check.integer(sub, "entries", 20, minimum=1)


def _readability(
    check: _Validator, items: Mapping[str, tuple[yaml.Node, yaml.Node]]
) -> ReadabilityOptions | None:
    """`readability: {in_short_max_grade, body_max_grade}`; absent: None (not checked)."""
    if "readability" not in items:
        return None
    reader = check.reader
    node = items["readability"][1]
    if isinstance(node, yaml.ScalarNode) and node.value in ("", "~", "null"):
        return ReadabilityOptions()  # `readability:` alone: the defaults
    sub = reader.mapping(node, "'readability'")
    if sub is None:
        return None
    check.unknown_keys(sub, READABILITY_KEYS, "'readability'")
    defaults = ReadabilityOptions()
    grades = []
    for key in READABILITY_KEYS:
        value = getattr(defaults, key)
        if key in sub:
            read = reader.read_number(sub[key][1], f"readability.{key}")
            if read is not None and not 0 < read <= MAX_GRADE:
                reader.fail(
                    sub[key][1],
                    f"readability.{key} must be a grade above 0 and at most {MAX_GRADE:g}, "
                    f"not {read:g}",
                    "school grades: 8 is plain English, 12 the end of secondary school",
                )
            elif read is not None:
                value = read
        grades.append(float(value))
    return ReadabilityOptions(*grades)


def _extra(check: _Validator, items: Mapping[str, tuple[yaml.Node, yaml.Node]]) -> dict[str, str]:
    if "extra" not in items:
        return {}
    sub = check.reader.mapping(items["extra"][1], "'extra'")
    result: dict[str, str] = {}
    for key, (_, value_node) in (sub or {}).items():
        value = check.reader.read_str(value_node, f"extra.{key}", allow_empty=True)
        if value is not None:
            result[key] = value
    return result


def _sections(
    check: _Validator, items: Mapping[str, tuple[yaml.Node, yaml.Node]]
) -> tuple[SectionSpec, ...]:
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


def _fields(check: _Validator, node: yaml.Node) -> tuple[FieldSpec, ...]:
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
        label = check.text(sub, "label", default=name.replace("_", " ").capitalize()) or name
        kind = check.text(sub, "type", default="text") or "text"
        if kind not in FIELD_TYPES:
            reader.fail(
                sub["type"][1],
                f"field type must be one of {', '.join(FIELD_TYPES)}, not '{kind}'",
                did_you_mean(kind, FIELD_TYPES)
                or "dates are not field types; use text, or table for a list of records",
            )
            continue
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


def _number_bounds(
    check: _Validator, sub: Mapping[str, tuple[yaml.Node, yaml.Node]], name: str, kind: str
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
    check: _Validator,
    sub: Mapping[str, tuple[yaml.Node, yaml.Node]],
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
    check: _Validator,
    sub: Mapping[str, tuple[yaml.Node, yaml.Node]],
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
        label = check.text(spec, "label", default=name.replace("_", " ").capitalize()) or name
        kind = check.text(spec, "type", default="text") or "text"
        if kind not in COLUMN_TYPES:
            reader.fail(
                spec["type"][1],
                f"column type must be one of {', '.join(COLUMN_TYPES)}, not '{kind}'",
                did_you_mean(kind, COLUMN_TYPES) or "use text for anything else",
            )
            continue
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


@dataclass(frozen=True, slots=True)
class OutputSetting:
    """Where the output folder was set, for messages."""

    written: str  #: as the author wrote it
    shown: str  #: the config file's name
    position: tuple[int, int] | None  #: line and column of the value in the config file
    from_cli: bool = False  #: set by --output rather than config.yaml

    @property
    def name(self) -> str:
        return "--output" if self.from_cli else "output_dir"

    def diagnostic(self, message: str, hint: str) -> Diagnostic:
        """An error about the output folder, at the place it was chosen."""
        if self.from_cli or self.position is None:
            return no_file_error("command line" if self.from_cli else self.shown, message, hint)
        return error(self.shown, *self.position, message, hint)


def check_output_dir(
    output: Path, root: Path, sources: tuple[Path, ...], setting: OutputSetting
) -> list[Diagnostic]:
    """Refuse output folders whose replacement would destroy something.

    The output folder is replaced wholesale by each build, so it must not be `/`, home, the
    project root or a parent of it, overlap a source folder, or hold a `.git` repository; an
    existing non-empty folder must carry our marker file (proof that a previous build made
    it). Real paths are compared, so a symlink cannot disguise any of these.
    `output` is the path as configured (absolute, symlinks not yet resolved).
    """
    real = Path(output).resolve()
    problem = _output_problem(real, root, sources)
    if problem is None:
        return []
    where = setting.name
    default = " (the default)" if setting.position is None and not setting.from_cli else ""
    literal = Path(os.path.normpath(Path(output).absolute()))
    resolved = f" (which resolves to '{real}')" if literal != real else ""
    message = (
        f"refusing to use {where} '{setting.written}'{default}{resolved}: it {problem}; a "
        "build replaces the whole output folder"
    )
    hint = (
        f"point {where} at a new folder, or at one kbgen built before; nothing was deleted"
    )
    return [setting.diagnostic(message, hint)]


def check_cache_dir(
    cache: Path,
    written: str,
    root: Path,
    sources: tuple[Path, ...],
    output: Path | None,
    setting: OutputSetting,
) -> list[Diagnostic]:
    """Refuse cache folders a build would write into wrongly.

    The build writes `v1/`, `CACHEDIR.TAG` and a `.gitignore` of `*` into the cache folder,
    so it must not be, hold or lie inside a source folder or the output folder (the cache
    would be published, or `templates/` ignored by git), nor be the project, home or root
    folder; a regular file by that name is refused too. `cache` is resolved already.
    """
    problem = _placement_problem(cache, root, sources, output)
    if problem is None and cache.exists() and not cache.is_dir():
        problem = "exists and is not a folder"
    if problem is None:
        return []
    default = " (the default)" if setting.position is None else ""
    message = f"refusing to use cache_dir '{written}'{default}: it {problem}"
    hint = "point cache_dir at a folder of its own, such as .kbgen-cache"
    if setting.position is None:
        return [no_file_error(setting.shown, message, hint)]
    return [error(setting.shown, *setting.position, message, hint)]


def _placement_problem(
    real: Path, root: Path, sources: tuple[Path, ...], output: Path | None = None
) -> str | None:
    """Why a folder kbgen writes (output or cache; real path) is in the wrong place, or None."""
    if real == Path(real.anchor):
        return "is the filesystem root"
    if real == Path.home().resolve():
        return "is your home folder"
    if real == root:
        return "is the project folder"
    if root.is_relative_to(real):
        return "is a parent of the project folder"
    named = [(source, "source folder") for source in sources]
    for folder, kind in named + ([(output, "output folder")] if output is not None else []):
        folder_real = folder.resolve()
        shown = f"the {kind} '{check_rel(folder_real, root)}'"
        if real == folder_real:
            return f"is {shown}"
        if real.is_relative_to(folder_real):
            return f"is inside {shown}"
        if folder_real.is_relative_to(real):
            return f"contains {shown}"
    return None


def _output_problem(real: Path, root: Path, sources: tuple[Path, ...]) -> str | None:
    """Why the (real) output folder is unsafe, or None."""
    problem = _placement_problem(real, root, sources)
    if problem is not None:
        return problem
    if real.exists() and not real.is_dir():
        return "exists and is not a folder"
    if (real / ".git").exists() or (real / ".git").is_symlink():
        # e.g. a gh-pages checkout kept in the output folder: its history is irreplaceable
        return "holds a .git repository, which the build would delete"
    if real.is_dir() and not (real / MARKER_FILE).is_file():
        try:
            non_empty = any(real.iterdir())
        except OSError:
            non_empty = True
        if non_empty:
            return f"is a non-empty folder that kbgen did not create (no {MARKER_FILE} marker file)"
    return None
