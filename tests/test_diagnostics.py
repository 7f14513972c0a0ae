"""Diagnostics: compiler-style formatting, positions, suggestions, ordering, JSON."""

from __future__ import annotations

import json

from kbgen.diagnostics import (
    Severity,
    did_you_mean,
    error,
    format_json,
    format_text,
    has_errors,
    no_file_error,
    promote_warnings,
    sorted_diagnostics,
    warning,
)


def test_error_prints_like_a_compiler_with_its_hint() -> None:
    problem = error("content/a.md", 12, 3, "link target 'x' does not exist", "did you mean 'y'?")
    assert problem.format() == (
        "content/a.md:12:3: error: link target 'x' does not exist\n  hint: did you mean 'y'?"
    )


def test_unknown_positions_point_at_the_start_of_the_file_or_line() -> None:
    assert error("content/a.md", None, None, "m", "h").location() == "content/a.md:1:1"
    assert warning("templates/x.html", 7, None, "m", "h").location() == "templates/x.html:7:1"
    assert error("content/a.md", 0, 2, "m", "h").location() == "content/a.md:0:2"  # kept as given


def test_a_problem_outside_any_file_has_no_position() -> None:
    problem = no_file_error("config.yaml", "config file not found", "pass --config")
    assert problem.format() == "config.yaml: error: config file not found\n  hint: pass --config"
    assert problem.line is None and problem.col is None and problem.is_error


def test_did_you_mean_is_case_insensitive_and_returns_the_original_spelling() -> None:
    assert did_you_mean("glutamte", ["Glutamate", "GABA"]) == "did you mean 'Glutamate'?"
    assert did_you_mean("zzz", ["Glutamate"]) is None


def test_sorted_diagnostics_orders_by_file_then_position_and_drops_duplicates() -> None:
    b = error("content/b.md", 1, 1, "b", "h")
    a2 = error("content/a.md", 10, 2, "a2", "h")
    a1 = error("content/a.md", 2, 9, "a1", "h")
    assert sorted_diagnostics([b, a2, a1, a2]) == [a1, a2, b]


def test_strict_mode_promotes_warnings_and_keeps_their_text() -> None:
    promoted = promote_warnings([warning("a.md", 1, 1, "orphan", "link it")])
    assert promoted[0].severity is Severity.ERROR and promoted[0].hint == "link it"
    assert has_errors(promoted) and not has_errors([warning("a.md", 1, 1, "w", "h")])


def test_text_and_json_formats() -> None:
    problems = [error("a.md", 1, 2, "broken", "fix"), warning("b.md", 3, 4, "old", None)]
    assert format_text(problems) == "a.md:1:2: error: broken\n  hint: fix\nb.md:3:4: warning: old"
    payload = json.loads(format_json(problems))
    assert payload["errors"] == 1 and payload["warnings"] == 1
    assert payload["diagnostics"][0] == {
        "path": "a.md",
        "line": 1,
        "col": 2,
        "severity": "error",
        "message": "broken",
        "hint": "fix",
    }


def test_unprintable_characters_in_paths_and_messages_are_escaped() -> None:
    import unicodedata

    from kbgen.diagnostics import error

    shown = error("content/a/evil\u202egnp.md", 1, 1, "name 'two\nlines'", "hint\u2028x").format()
    assert shown == ("content/a/evil\\u202egnp.md:1:1: error: name 'two\\nlines'\n"
                     "  hint: hint\\u2028x")
    nfd = unicodedata.normalize("NFD", "content/a/café.md")
    assert error(nfd, 1, 1, "m").location() == "content/a/cafe\\u0301.md:1:1"
    assert error("content/a/café.md", 1, 1, "m").location() == "content/a/café.md:1:1"
    assert error(nfd, 1, 1, "m").to_json()["path"] == nfd  # tools get the real name
