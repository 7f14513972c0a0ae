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
        """Parse `text` to a node tree; None (with a diagnostic) if it is not valid YAML."""
        try:
            node = yaml.compose(text, Loader=_Loader)
        except yaml.MarkedYAMLError as exc:
            self.diagnostics.append(self._syntax_error(exc, text))
            return None
        except yaml.YAMLError as exc:  # pragma: no cover - unmarked errors are rare
            self.diagnostics.append(
                error(self.path, self.line_offset + 1, 1, f"invalid YAML: {exc}")
            )
            return None
        except RecursionError:
            self.diagnostics.append(
                error(
                    self.path,
                    self.line_offset + 1,
                    1,
                    "YAML is nested too deeply",
                    "flatten the structure",
                )
            )
            return None
        if node is not None and not self._check_no_aliases(node):
            return None
        return node

    def _syntax_error(self, exc: yaml.MarkedYAMLError, text: str) -> Diagnostic:
        mark = exc.problem_mark or exc.context_mark
        line = self.line_offset + (mark.line + 1 if mark else 1)
        col = mark.column + 1 if mark else 1
        problem = exc.problem or "invalid YAML"
        hint = "check the indentation and quoting on this line"
        if "\t" in text and ("tab" in problem or "found character" in problem):
            hint = "YAML does not allow tabs for indentation; indent with spaces"
            problem = "tab character used for indentation"
        elif "found unexpected end of stream" in problem or "found unexpected end" in problem:
            hint = "a quoted string or bracket is not closed"
        elif "mapping values are not allowed" in problem:
            hint = "quote values that contain ': ' (for example title: \"A: B\")"
        elif "could not find expected ':'" in problem:
            hint = "each line must be 'key: value'; quote values that span lines"
        return error(self.path, line, col, f"invalid YAML: {problem}", hint)

    def _check_no_aliases(self, root: yaml.Node) -> bool:
        """Refuse anchors/aliases: a repeated node object means an alias was used."""
        seen: set[int] = set()
        stack: list[yaml.Node] = [root]
        while stack:
            node = stack.pop()
            if id(node) in seen:
                self.fail(
                    node,
                    "YAML anchors and aliases (&name / *name) are not supported here",
                    "write the value out in full",
                )
                return False
            seen.add(id(node))
            if isinstance(node, yaml.MappingNode):
                for key, value in node.value:
                    stack.append(key)
                    stack.append(value)
            elif isinstance(node, yaml.SequenceNode):
                stack.extend(node.value)
        return True

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

    def read_int(self, node: yaml.Node, what: str, minimum: int | None = None) -> int | None:
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
            self.fail(node, f"{what} must be at least {minimum}, not {number}")
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
