"""Load `config.yaml` once, at the edge, into a frozen `Config`.

Input: the config file path (its folder is the project root) and the `--output` override.
Output: `Config` or None, plus every problem found (not just the first), sorted, each at its
config.yaml line and column. The steps: read and decode the file, compose its YAML
(yamlload.py), read the top-level keys (config_schema.py) and the sections
(config_sections.py), then check the folders: an output or cache folder that a build could
destroy something with (`/`, home, the project, sources) is refused before anything else runs
(config_paths.py). The settings themselves are the dataclasses of config_types.py.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import yaml

from kbgen.config_paths import check_cache_dir, check_output_dir
from kbgen.config_schema import (
    MAX_RENDER_TIME_LIMIT,
    MAX_REVIEW_INTERVAL_DAYS,
    TOP_LEVEL_KEYS,
    Items,
    Validator,
    read_base_url,
    read_extra,
    read_feed_entries,
    read_language,
    read_markdown_options,
    read_readability,
)
from kbgen.config_sections import read_sections
from kbgen.config_types import DEFAULT_RENDER_TIME_LIMIT, Config, OutputSetting, shown_path
from kbgen.diagnostics import Diagnostic, error, no_file_error, sorted_diagnostics
from kbgen.yamlload import YamlReader


@dataclass(frozen=True, slots=True)
class _Folders:
    """The folders config.yaml names (or `--output` overrides), resolved against the root."""

    output_written: str  #: output_dir as the author wrote it, or the --output path
    output_configured: Path  #: absolute, symlinks not yet resolved (for the safety check)
    output_dir: Path
    content_dir: Path
    templates_dir: Path
    static_dir: Path
    cache_written: str  #: cache_dir as the author wrote it
    cache_dir: Path
    output_setting: OutputSetting  #: where the output folder was chosen, for messages
    cache_at: tuple[int, int] | None  #: cache_dir's line and column, if set

    @property
    def sources(self) -> tuple[Path, ...]:
        return (self.content_dir, self.templates_dir, self.static_dir)


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
    read = _read_text(config_path, given, shown)
    if isinstance(read, Diagnostic):
        return None, [read]
    raw, text = read
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
    check = Validator(reader, config_path.parent.resolve())
    return _validated(check, root_node, items, config_path, raw, output_override)


def _read_text(config_path: Path, given: str, shown: str) -> tuple[bytes, str] | Diagnostic:
    """The config file's bytes and text, or why they cannot be read."""
    try:
        raw = config_path.read_bytes()
    except FileNotFoundError:
        return no_file_error(
            given,
            "config file not found",
            "run the command in the project folder, or pass --config PATH/config.yaml",
        )
    except IsADirectoryError:
        return no_file_error(
            given, "the config path is a folder", "pass the config file: --config PATH/config.yaml"
        )
    except OSError as exc:
        return no_file_error(
            given, f"cannot read the config file: {exc.strerror}", "check the file's permissions"
        )
    try:
        return raw, raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        return error(
            shown,
            line,
            col,
            f"config file is not valid UTF-8 (byte 0x{raw[exc.start]:02x})",
            "save the file as UTF-8",
        )


def _validated(
    check: Validator,
    root_node: yaml.Node,
    items: Items,
    config_path: Path,
    raw: bytes,
    output_override: Path | None,
) -> tuple[Config | None, list[Diagnostic]]:
    """The `Config` the top-level keys describe, or None and every problem with them."""
    reader = check.reader
    check.unknown_keys(items, TOP_LEVEL_KEYS, "config.yaml")
    title = check.text(items, "title", at=root_node)
    description = check.text(items, "description", default="") or ""
    language = read_language(check, items)
    base_url = read_base_url(check, items)
    folders = _read_folders(check, items, output_override)
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
    markdown = read_markdown_options(check, items)
    feed_entries = read_feed_entries(check, items)
    sections = read_sections(check, items)
    extra = read_extra(check, items)
    readability = read_readability(check, items)
    diagnostics = list(reader.diagnostics) + _folder_problems(check, items, folders)
    if diagnostics or title is None:
        return None, diagnostics
    return Config(
        path=config_path,
        root=check.root,
        title=title,
        description=description,
        language=language,
        base_url=base_url,
        output_dir=folders.output_dir,
        content_dir=folders.content_dir,
        templates_dir=folders.templates_dir,
        static_dir=folders.static_dir,
        cache_dir=folders.cache_dir,
        directory_urls=directory_urls,
        review_interval_days=review_interval_days,
        disclaimer=disclaimer,
        sections=sections,
        markdown=markdown,
        feed_entries=feed_entries,
        search=search,
        extra=extra,
        cache_dir_at=folders.cache_at,
        render_time_limit=render_time_limit,
        digest=hashlib.sha256(raw + str(folders.output_dir).encode()).hexdigest(),
        output_setting=folders.output_setting,
        readability=readability,
    ), []


def _read_folders(check: Validator, items: Items, output_override: Path | None) -> _Folders:
    root = check.root
    if output_override is not None:
        output_written = str(output_override)
        output_configured = output_dir = output_override.absolute()
    else:
        output_written = check.written_path(items, "output_dir", "site")
        output_configured = root / output_written
        output_dir = output_configured.resolve()
    content_dir = check.path(items, "content_dir", "content")
    templates_dir = check.path(items, "templates_dir", "templates")
    static_dir = check.path(items, "static_dir", "static")
    cache_written = check.written_path(items, "cache_dir", ".kbgen-cache")
    output_at = _position(check.reader, items, "output_dir")
    return _Folders(
        output_written,
        output_configured,
        output_dir,
        content_dir,
        templates_dir,
        static_dir,
        cache_written,
        (root / cache_written).resolve(),
        OutputSetting(output_written, check.reader.path, output_at, output_override is not None),
        _position(check.reader, items, "cache_dir"),
    )


def _position(reader: YamlReader, items: Items, key: str) -> tuple[int, int] | None:
    """Line and column of a key's value, None when the key is not set."""
    return reader.pos(items[key][1]) if key in items else None


def _folder_problems(check: Validator, items: Items, folders: _Folders) -> list[Diagnostic]:
    """Source folders that are missing; output and cache folders in a dangerous place."""
    problems = []
    for name, directory in (
        ("content_dir", folders.content_dir),
        ("templates_dir", folders.templates_dir),
    ):
        if not directory.is_dir():
            problems.append(
                error(
                    check.reader.path,
                    *(_position(check.reader, items, name) or (1, 1)),
                    f"{name} '{shown_path(directory, check.root)}' is not a folder",
                    "create it or fix the path in config.yaml",
                )
            )
    output_refused = check_output_dir(
        folders.output_configured, check.root, folders.sources, folders.output_setting
    )
    problems += output_refused
    problems += check_cache_dir(
        folders.cache_dir,
        folders.cache_written,
        check.root,
        folders.sources,
        None if output_refused else folders.output_dir,  # one error for a misplaced output folder
        OutputSetting("", check.reader.path, folders.cache_at),
    )
    return problems
