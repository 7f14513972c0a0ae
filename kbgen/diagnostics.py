"""Diagnostics: problems found in user input, as values.

Every stage returns `Diagnostic`s instead of raising or logging. The CLI prints them like a
compiler (`content/x.md:12:3: error: message` + `  hint: ...`) so editors can jump to them, or
as JSON for tools. Helpers here build the common messages so wording stays uniform.
`error()`/`warning()` always give a line and column: a problem with a whole file (a symlink
loop, a duplicate slug) points at 1:1, and one whose column is unknown (Jinja reports lines
only) at the line's first column. Only `no_file_error` has no position.
"""

from __future__ import annotations

import enum
import json
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


class Severity(enum.Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem in one input file; `line`/`col` are 1-based, None when unknown."""

    path: str
    line: int | None
    col: int | None
    severity: Severity
    message: str
    hint: str | None = None

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def location(self) -> str:
        where = printable(self.path, path=True)
        if self.line is not None:
            where += f":{self.line}"
            if self.col is not None:
                where += f":{self.col}"
        return where

    def format(self) -> str:
        text = f"{self.location()}: {self.severity.value}: {printable(self.message)}"
        if self.hint:
            text += f"\n  hint: {printable(self.hint)}"
        return text

    def to_json(self) -> dict[str, object]:
        return {
            "path": self.path,
            "line": self.line,
            "col": self.col,
            "severity": self.severity.value,
            "message": self.message,
            "hint": self.hint,
        }

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.path, self.line or 0, self.col or 0, self.message)


#: Unicode categories that print as nothing or move the cursor: control characters (a
#: newline in a file name), format characters (U+202E turns the rest of the line around),
#: line and paragraph separators. They would scramble the `path:line:col` line.
_UNPRINTABLE = frozenset({"Cc", "Cf", "Zl", "Zp"})


def printable(text: str, *, path: bool = False) -> str:
    """`text` with unprintable characters as escapes (`\\n`, `\\u202e`). For a path that is
    not in Unicode NFC form, combining marks are escaped too, so an NFD `cafe\\u0301.md`
    cannot be mistaken for its NFC twin `café.md`."""
    marks = path and not unicodedata.is_normalized("NFC", text)
    if text.isprintable() and not marks:
        return text
    return "".join(
        _escape(c)
        if unicodedata.category(c) in _UNPRINTABLE or (marks and unicodedata.combining(c))
        else c
        for c in text
    )


def _escape(char: str) -> str:
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
    if char in named:
        return named[char]
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def error(
    path: str, line: int | None, col: int | None, message: str, hint: str | None = None
) -> Diagnostic:
    """An error in `path`; an unknown line or column points at the file's or line's start."""
    return Diagnostic(path, *_position(line, col), Severity.ERROR, message, hint)


def warning(
    path: str, line: int | None, col: int | None, message: str, hint: str | None = None
) -> Diagnostic:
    """A warning in `path`; positions as for `error`."""
    return Diagnostic(path, *_position(line, col), Severity.WARNING, message, hint)


def _position(line: int | None, col: int | None) -> tuple[int, int]:
    return (1 if line is None else line, 1 if col is None else col)


def no_file_error(what: str, message: str, hint: str) -> Diagnostic:
    """An error about something that is not a position in a file (a missing file, an option)."""
    return Diagnostic(what, None, None, Severity.ERROR, message, hint)


def did_you_mean(word: str, candidates: Iterable[str], cutoff: float = 0.6) -> str | None:
    """A "did you mean 'x'?" hint for the closest candidate, or None."""
    import difflib  # here: only a build with a mistake to report needs it

    pool = list(candidates)
    lowered = {candidate.lower(): candidate for candidate in pool}
    matches = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=cutoff)
    if not matches:
        return None
    return f"did you mean '{lowered[matches[0]]}'?"


def has_errors(diagnostics: Iterable[Diagnostic]) -> bool:
    return any(d.is_error for d in diagnostics)


def sorted_diagnostics(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Deterministic order: by file, then position; duplicates removed."""
    return sorted(set(diagnostics), key=Diagnostic.sort_key)


def promote_warnings(diagnostics: Sequence[Diagnostic]) -> list[Diagnostic]:
    """`--strict`: every warning becomes an error."""
    return [
        Diagnostic(d.path, d.line, d.col, Severity.ERROR, d.message, d.hint)
        if d.severity is Severity.WARNING
        else d
        for d in diagnostics
    ]


def format_text(diagnostics: Sequence[Diagnostic]) -> str:
    return "\n".join(d.format() for d in diagnostics)


def format_json(diagnostics: Sequence[Diagnostic]) -> str:
    errors = sum(1 for d in diagnostics if d.is_error)
    payload = {
        "errors": errors,
        "warnings": len(diagnostics) - errors,
        "diagnostics": [d.to_json() for d in diagnostics],
    }
    return json.dumps(payload, indent=2, ensure_ascii=False)
