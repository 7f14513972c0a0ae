"""The schema of `config.yaml`'s top level: which keys there are and how each is read.

Input: the YAML nodes of the config file's top-level mapping (`Items`, from `yamlload`) and
the `YamlReader` that collects their problems.
Output: typed values (`MarkdownOptions`, `ReadabilityOptions`, the language, the base URL,
`extra`), each problem a `Diagnostic` at its config.yaml line and column, with a "did you mean"
hint for an unknown key. `Validator` reads one key of any mapping; `config_sections.py` reads
`sections:` with it, and `config.py` puts the whole `Config` together.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from kbgen.config_types import MarkdownOptions, ReadabilityOptions
from kbgen.diagnostics import did_you_mean, error
from kbgen.yamlload import YamlReader

#: a YAML mapping as `YamlReader.mapping` returns it: key -> (key node, value node)
Items = Mapping[str, tuple[yaml.Node, yaml.Node]]

RAW_HTML_MODES = ("escape", "sanitize", "allow")
MAX_RENDER_TIME_LIMIT = 86_400
MAX_REVIEW_INTERVAL_DAYS = 36_500  #: a century; longer would overflow date arithmetic
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
MARKDOWN_KEYS = ("raw_html", "toc_depth", "glossary_tooltips")
FEED_KEYS = ("entries",)
READABILITY_KEYS = ("in_short_max_grade", "body_max_grade")
MAX_GRADE = 30.0  #: beyond any real text: a typo such as 80 for 8.0


@dataclass(frozen=True, slots=True)
class Validator:
    """Reads the keys of one mapping into typed values; problems go to the reader."""

    reader: YamlReader
    root: Path

    def unknown_keys(self, items: Items, allowed: tuple[str, ...], where: str) -> None:
        for key, (key_node, _) in items.items():
            if key not in allowed:
                hint = did_you_mean(key, allowed) or f"allowed keys: {', '.join(allowed)}"
                self.reader.fail(key_node, f"unknown key '{key}' in {where}", hint)

    def text(
        self,
        items: Items,
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

    def boolean(self, items: Items, key: str, default: bool) -> bool:
        if key not in items:
            return default
        value = self.reader.read_bool(items[key][1], f"'{key}'")
        return default if value is None else value

    def integer(
        self,
        items: Items,
        key: str,
        default: int,
        minimum: int,
        maximum: int | None = None,
    ) -> int:
        if key not in items:
            return default
        value = self.reader.read_int(items[key][1], f"'{key}'", minimum=minimum, maximum=maximum)
        return default if value is None else value

    def path(self, items: Items, key: str, default: str) -> Path:
        return (self.root / self.written_path(items, key, default)).resolve()

    def written_path(self, items: Items, key: str, default: str) -> str:
        """The path as the author wrote it (relative to the project root, or absolute)."""
        return self.text(items, key, default=default) or default


#: a BCP 47 language tag, loosely: a 2-3 letter language, then subtags of letters/digits
LANGUAGE_TAG_RE = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*")


def read_language(check: Validator, items: Items) -> str:
    """`language` (default en): a language tag or nothing, since it lands in `<html lang>`
    and in Pagefind's index."""
    language = check.text(items, "language", default="en") or "en"
    if not LANGUAGE_TAG_RE.fullmatch(language):
        check.reader.fail(
            items["language"][1],
            f"language must be a language tag such as 'en' or 'pt-BR', not '{language}'",
            "use letters, digits and hyphens: a BCP 47 tag (en, de, pt-BR, zh-Hant)",
        )
    return language


def read_base_url(check: Validator, items: Items) -> str:
    """`base_url`: "" when unset, else the site's root URL, ending with "/"."""
    base_url = (check.text(items, "base_url", default="") or "").strip()
    if base_url:
        problem = _base_url_problem(base_url)
        if problem is not None:
            check.reader.fail(
                items["base_url"][1],
                f"base_url '{base_url}' {problem}",
                "page URLs are made by appending their paths to it: write the site's root, "
                "for example https://kb.example.org/",
            )
    if base_url and not base_url.endswith("/"):
        base_url += "/"
    return base_url


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


def read_markdown_options(check: Validator, items: Items) -> MarkdownOptions:
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


def read_feed_entries(check: Validator, items: Items) -> int:
    if "feed" not in items:
        return 20
    sub = check.reader.mapping(items["feed"][1], "'feed'")
    if sub is None:
        return 20
    check.unknown_keys(sub, FEED_KEYS, "'feed'")
    return check.integer(sub, "entries", 20, minimum=1)


def read_readability(check: Validator, items: Items) -> ReadabilityOptions | None:
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


def read_extra(check: Validator, items: Items) -> dict[str, str]:
    if "extra" not in items:
        return {}
    sub = check.reader.mapping(items["extra"][1], "'extra'")
    result: dict[str, str] = {}
    for key, (_, value_node) in (sub or {}).items():
        value = check.reader.read_str(value_node, f"extra.{key}", allow_empty=True)
        if value is not None:
            result[key] = value
    return result
