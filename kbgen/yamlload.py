"""Strict YAML: parse to position-carrying nodes, then read values by the schema's rules.

PyYAML's `safe_load` guesses types (YAML 1.1: `no` -> False, `012345` -> 5349) and silently
keeps the last of two duplicate keys. We never let it guess: `compose` gives nodes with marks,
and the caller asks for the type the schema expects (`read_str`, `read_bool`, ...), so `no` in a
string field stays the string "no" and `draft: yes` is an error. Anchors/aliases are refused
(an alias bomb can't expand), and every problem is a `Diagnostic` at the node's file position.

Input: YAML text, the file path for messages, and the file line where the text starts.
Output: `yaml.Node` trees and `Diagnostic`s.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import yaml

from kbgen.diagnostics import Diagnostic, error

try:  # the C parser is ~10x faster; its node trees are identical
    _Loader: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # pragma: no cover - PyYAML without libyaml
    _Loader = yaml.SafeLoader

_DATE_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_INT_RE = re.compile(r"^[-+]?[0-9]+$")
_FLOAT_RE = re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$")
BOOL_TRUE = frozenset({"true", "True", "TRUE"})
BOOL_FALSE = frozenset({"false", "False", "FALSE"})
MAX_DEPTH = 50  #: nesting levels of lists/mappings; real files use three or four
_CORE_TAG_PREFIX = "tag:yaml.org,2002:"
#: None: no tag written; "!": the non-specific tag; the core types name what we read anyway
_ALLOWED_TAGS = frozenset(
    {None, "!", *(f"{_CORE_TAG_PREFIX}{name}" for name in ("str", "int", "float", "bool", "null"))}
    | {f"{_CORE_TAG_PREFIX}seq", f"{_CORE_TAG_PREFIX}map"}
)


@dataclass
class YamlReader:
    """Reads nodes of one YAML text; collects diagnostics instead of raising."""

    path: str
    line_offset: int = 0  #: file line (0-based) of the text's first line
    diagnostics: list[Diagnostic] = field(default_factory=list)

    # -- positions ------------------------------------------------------------------
    def pos(self, node: yaml.Node) -> tuple[int, int]:
        return self.line_offset + node.start_mark.line + 1, node.start_mark.column + 1

    def fail(self, node: yaml.Node, message: str, hint: str | None = None) -> None:
        line, col = self.pos(node)
        self.diagnostics.append(error(self.path, line, col, message, hint))

    # -- parsing --------------------------------------------------------------------
    def compose(self, text: str) -> yaml.Node | None:
        """Parse `text` to a node tree; None (with a diagnostic) if it is not valid YAML.

        A first pass over the parser's events refuses what `compose` must never see: aliases
        (an alias bomb), tags such as `!!python/object` (we never construct objects, but a
        tag in content is always a mistake or an attack), and nesting deeper than MAX_DEPTH
        (the composer recurses; libyaml's overflows the C stack and kills the process).
        """
        try:
            if not self._check_events(text, _Loader):
                return None
            return yaml.compose(text, Loader=_Loader)
        except yaml.MarkedYAMLError as exc:
            if not self._refused_by_python_parser(text):
                self.diagnostics.append(self._syntax_error(exc, text))
            return None
        except yaml.reader.ReaderError as exc:  # a character YAML does not allow
            line = text.count("\n", 0, exc.position)
            col = exc.position - (text.rfind("\n", 0, exc.position) + 1)
            self.diagnostics.append(
                error(
                    self.path,
                    self.line_offset + line + 1,
                    col + 1,
                    f"the text contains the control character U+{exc.character:04X}"
                    if isinstance(exc.character, int)
                    else "the text contains a character YAML does not allow",
                    "remove it; YAML files may hold printable text, tabs and line breaks",
                )
            )
            return None
        except yaml.YAMLError as exc:  # pragma: no cover - unmarked errors are rare
            self.diagnostics.append(
                error(
                    self.path,
                    self.line_offset + 1,
                    1,
                    f"invalid YAML: {exc}",
                    "check the indentation and quoting",
                )
            )
            return None

    def _fail_at(self, event: yaml.Event, message: str, hint: str) -> None:
        mark = event.start_mark
        line, col = (mark.line, mark.column) if mark is not None else (0, 0)
        self.diagnostics.append(
            error(self.path, self.line_offset + line + 1, col + 1, message, hint)
        )

    def _refused_by_python_parser(self, text: str) -> bool:
        """Whether the pure-Python parser meets an alias, tag or excess depth first.

        The libyaml in recent PyYAML wheels (6.0.4) has its own nesting limit of 1,000
        levels, and its scanner reads up to 1,024 characters ahead for a possible key, so
        `[[[[...` fails there before our depth check sees the 51st event; other versions
        have no limit, or another one. The pure-Python parser has no limit and its look-ahead
        raises nothing, so re-reading the text with it gives the diagnostic every PyYAML
        version gives, at our position and with our hint. It runs only for text the C parser
        refused, and stops at the first problem; when it fails too, the C parser's error is
        the one reported.
        """
        if _Loader is yaml.SafeLoader:  # pragma: no cover - PyYAML without libyaml
            return False
        before = len(self.diagnostics)
        try:
            self._check_events(text, yaml.SafeLoader)
        except yaml.YAMLError:
            del self.diagnostics[before:]
            return False
        return len(self.diagnostics) > before

    def _check_events(self, text: str, loader: type[yaml.SafeLoader]) -> bool:
        """Stream the parser's events, stopping at the first alias, tag or excess depth."""
        depth = 0
        for event in yaml.parse(text, Loader=loader):
            if isinstance(event, yaml.AliasEvent):
                self._fail_at(
                    event,
                    "YAML anchors and aliases (&name / *name) are not supported here",
                    "write the value out in full",
                )
                return False
            tag = getattr(event, "tag", None)
            if tag not in _ALLOWED_TAGS:
                self._fail_at(
                    event,
                    f"YAML tag '{_shown_tag(str(tag))}' is not allowed",
                    "remove the tag: values are plain text, numbers, dates, lists and mappings",
                )
                return False
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    self._fail_at(
                        event,
                        f"YAML is nested more than {MAX_DEPTH} levels deep",
                        "flatten the structure; front matter and data files need only a few levels",
                    )
                    return False
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
        return True

    def _syntax_error(self, exc: yaml.MarkedYAMLError, text: str) -> Diagnostic:
        """A parser error as a diagnostic that names the likely mistake and its fix."""
        problem = exc.problem or "invalid YAML"
        context = exc.context or ""
        mark = exc.problem_mark or exc.context_mark
        line_text = _line_at(text, mark.line) if mark else ""
        at_char = line_text[mark.column : mark.column + 1] if mark else ""
        message = f"invalid YAML: {problem}"
        hint = "check the indentation and quoting on this line"
        if "tab" in problem or at_char == "\t":
            message = "invalid YAML: tab character used for indentation"
            hint = "YAML does not allow tabs for indentation; indent with spaces"
        elif "quoted scalar" in context and exc.context_mark is not None:
            mark = exc.context_mark
            message = "invalid YAML: a quoted value is not closed"
            hint = "add the closing quote on the same line, or remove the opening one"
        elif ("flow sequence" in context or "flow mapping" in context) and exc.context_mark:
            opening, closing = ("[", "]") if "sequence" in context else ("{", "}")
            mark = exc.context_mark
            message = f"invalid YAML: a '{opening}' is not closed"
            hint = f"close it with '{closing}' and separate the items with ', '"
        elif "mapping values are not allowed" in problem:
            if (
                mark is not None
                and line_text.startswith(" ")
                and _first_colon(line_text) == mark.column
            ):
                message = "invalid YAML: unexpected indentation"
                hint = (
                    "keys of one mapping must start in the same column; remove the leading spaces"
                )
            else:
                message = "invalid YAML: an unquoted value contains ': '"
                hint = 'quote the value, for example title: "Ketamine: an overview"'
        elif "expected '-' indicator" in problem or "block collection" in context:
            # libyaml: "did not find expected '-' indicator"; the Python parser: "expected
            # <block end>, but found '?'"; both while parsing a block collection (a list)
            message = "invalid YAML: list items and 'key: value' lines are mixed"
            hint = "indent the keys under their list item, or make every line a '- item'"
        elif "could not find expected ':'" in problem:
            hint = "each line must be 'key: value'; quote values that span lines"
        elif "cannot start any token" in problem and at_char.strip():
            message = f"invalid YAML: a value cannot start with '{at_char}'"
            hint = f'quote the value, e.g. "{at_char}..."'
        elif "end of stream" in problem:
            hint = "a quoted string or bracket is not closed"
        line = self.line_offset + (mark.line + 1 if mark else 1)
        col = mark.column + 1 if mark else 1
        return error(self.path, line, col, message, hint)

    # -- structure ------------------------------------------------------------------
    def mapping(self, node: yaml.Node, what: str) -> dict[str, tuple[yaml.Node, yaml.Node]] | None:
        """Key -> (key node, value node); duplicate and non-string keys are errors."""
        if not isinstance(node, yaml.MappingNode):
            self.fail(
                node,
                f"{what} must be a mapping of 'key: value' lines, not {describe(node)}",
                "write one 'key: value' per line",
            )
            return None
        items: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self.fail(
                    key_node, "a key must be a plain word", "remove the brackets around the key"
                )
                continue
            key = str(key_node.value)
            if key in items:
                first_line, _ = self.pos(items[key][0])
                self.fail(
                    key_node,
                    f"duplicate key '{key}' (first defined on line {first_line})",
                    "remove one of the two definitions",
                )
                continue
            items[key] = (key_node, value_node)
        return items

    def sequence(self, node: yaml.Node, what: str) -> list[yaml.Node] | None:
        if not isinstance(node, yaml.SequenceNode):
            self.fail(
                node,
                f"{what} must be a list, not {describe(node)}",
                "write a list: [a, b] or one '- item' per line",
            )
            return None
        return list(node.value)

    # -- scalars --------------------------------------------------------------------
    def read_str(self, node: yaml.Node, what: str, allow_empty: bool = False) -> str | None:
        """A string exactly as written: `no` stays "no", `012` stays "012"."""
        if not isinstance(node, yaml.ScalarNode):
            self.fail(
                node, f"{what} must be text, not {describe(node)}", "write it as a plain string"
            )
            return None
        value = str(node.value)
        is_null = is_plain(node) and value in ("", "~", "null", "Null", "NULL")
        if (is_null or not value.strip()) and not allow_empty:
            self.fail(node, f"{what} is empty", f"give {what} a value")
            return None
        return "" if is_null else value

    def read_str_list(self, node: yaml.Node, what: str) -> list[str] | None:
        if isinstance(node, yaml.ScalarNode) and is_plain(node) and node.value in ("", "~"):
            return []
        items = self.sequence(node, what)
        if items is None:
            return None
        values: list[str] = []
        for item in items:
            value = self.read_str(item, f"each entry of {what}")
            if value is not None:
                values.append(value)
        return values

    def read_bool(self, node: yaml.Node, what: str) -> bool | None:
        value = node.value if isinstance(node, yaml.ScalarNode) else None
        if value in BOOL_TRUE:
            return True
        if value in BOOL_FALSE:
            return False
        self.fail(
            node,
            f"{what} must be true or false, not {quote_node(node)}",
            "write true or false (yes/no/on/off are not accepted)",
        )
        return None

    def read_int(
        self,
        node: yaml.Node,
        what: str,
        minimum: int | None = None,
        maximum: int | None = None,
    ) -> int | None:
        value = node.value if isinstance(node, yaml.ScalarNode) else None
        if not isinstance(value, str) or not _INT_RE.match(value) or not is_plain(node):
            self.fail(
                node,
                f"{what} must be a whole number, not {quote_node(node)}",
                "write digits only, e.g. 3",
            )
            return None
        number = int(value)
        if minimum is not None and number < minimum:
            self.fail(
                node, f"{what} must be at least {minimum}, not {number}", _range(minimum, maximum)
            )
            return None
        if maximum is not None and number > maximum:
            self.fail(
                node, f"{what} must be at most {maximum}, not {number}", _range(minimum, maximum)
            )
            return None
        return number

    def read_number(self, node: yaml.Node, what: str) -> float | None:
        value = node.value if isinstance(node, yaml.ScalarNode) else None
        if not isinstance(value, str) or not _FLOAT_RE.match(value) or not is_plain(node):
            self.fail(
                node,
                f"{what} must be a number, not {quote_node(node)}",
                "write a plain number such as 48 or 0.5",
            )
            return None
        number = float(value)
        if not math.isfinite(number):  # pragma: no cover - the regex excludes inf/nan
            return None
        return number

    def read_date(self, node: yaml.Node, what: str) -> dt.date | None:
        value = node.value if isinstance(node, yaml.ScalarNode) else None
        match = _DATE_RE.match(value) if isinstance(value, str) else None
        if match is None:
            self.fail(
                node,
                f"{what} must be a date written YYYY-MM-DD, not {quote_node(node)}",
                "for example: 2026-01-31",
            )
            return None
        try:
            return dt.date(int(match[1]), int(match[2]), int(match[3]))
        except ValueError:
            self.fail(
                node, f"{what} {value!r} is not a real calendar date", "check the month and day"
            )
            return None


def is_plain(node: yaml.Node) -> bool:
    """An unquoted scalar (the C loader marks it '', the Python loader None)."""
    return not getattr(node, "style", None)


def describe(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return f"the value {quote_node(node)}"


def quote_node(node: yaml.Node) -> str:
    if isinstance(node, yaml.ScalarNode):
        text = str(node.value)
        return f"'{text[:60]}…'" if len(text) > 60 else f"'{text}'"
    return "a mapping" if isinstance(node, yaml.MappingNode) else "a list"


def iter_scalars(node: yaml.Node) -> Iterator[yaml.ScalarNode]:
    """Every scalar below `node` (used to look for stray values)."""
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, yaml.ScalarNode):
            yield current
        elif isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                stack.extend((key, value))
        elif isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)


def _shown_tag(tag: str) -> str:
    """`tag:yaml.org,2002:python/object` -> `!!python/object`, as the author wrote it."""
    return "!!" + tag[len(_CORE_TAG_PREFIX) :] if tag.startswith(_CORE_TAG_PREFIX) else tag


def _line_at(text: str, index: int) -> str:
    lines = text.split("\n")
    return lines[index] if 0 <= index < len(lines) else ""


def _first_colon(line: str) -> int:
    """Column of the first ': ' (or final ':') in a line, -1 if none."""
    position = line.find(": ")
    if position < 0 and line.rstrip().endswith(":"):
        position = len(line.rstrip()) - 1
    return position


def _range(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f"use a whole number from {minimum} to {maximum}"
    if minimum is not None:
        return f"use a whole number of at least {minimum}"
    return f"use a whole number of at most {maximum}"
