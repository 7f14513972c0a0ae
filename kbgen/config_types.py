"""The frozen settings a build runs on: `Config` and the specs it is made of.

Input: nothing (plain data, no I/O); `config.load_config` fills them in from `config.yaml`
(validated by `config_schema.py` and `config_sections.py`).
Output: `Config`, `SectionSpec`, `FieldSpec`, `ColumnSpec`, `MarkdownOptions`,
`ReadabilityOptions` and `OutputSetting` (where the output folder was chosen, for messages);
`shown_path`, how a path is shown in messages (`Config.rel`).
Every stage downstream reads these, never YAML or the command line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kbgen.diagnostics import Diagnostic, error, no_file_error

DEFAULT_RENDER_TIME_LIMIT = 30  #: seconds; pages render in milliseconds, loops never end


def shown_path(path: Path, root: Path) -> str:
    """A path as shown in messages: relative to the project root when inside it ("." for the
    root itself), else as given."""
    try:
        return path.relative_to(root).as_posix() or "."
    except ValueError:
        return str(path)


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    """One column of a `table` field: every row gives it a cell (unless not required)."""

    name: str
    label: str
    type: str  #: one of config_schema.COLUMN_TYPES
    values: tuple[str, ...] = ()  #: allowed values (enum only)
    required: bool = True


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """A typed front-matter field that every article of a section carries."""

    name: str
    label: str
    type: str  #: one of config_schema.FIELD_TYPES
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
        return shown_path(path, self.root)
