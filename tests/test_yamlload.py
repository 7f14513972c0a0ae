"""Strict YAML: no guessing of types, no aliases or tags, positions on every problem."""

from __future__ import annotations

import datetime as dt
import time

import pytest
import yaml

from kbgen.yamlload import MAX_DEPTH, YamlReader


def compose(text: str, offset: int = 0) -> tuple[yaml.Node | None, list[str]]:
    reader = YamlReader("f.yaml", line_offset=offset)
    node = reader.compose(text)
    return node, [d.format() for d in reader.diagnostics]


def mapping(text: str) -> tuple[YamlReader, dict[str, tuple[yaml.Node, yaml.Node]]]:
    reader = YamlReader("f.yaml")
    node = reader.compose(text)
    assert node is not None, reader.diagnostics
    items = reader.mapping(node, "the file")
    assert items is not None
    return reader, items


def test_norway_and_octal_values_stay_the_strings_written() -> None:
    reader, items = mapping("a: no\nb: on\nc: 012345\nd: yes\ne: 1e3\nf: ~x\n")
    values = {key: reader.read_str(items[key][1], key) for key in items}
    assert values == {"a": "no", "b": "on", "c": "012345", "d": "yes", "e": "1e3", "f": "~x"}
    tags = reader.read_str_list(mapping("t: [no, on, off]\n")[1]["t"][1], "tags")
    assert tags == ["no", "on", "off"]
    assert reader.diagnostics == []


def test_booleans_are_only_true_and_false() -> None:
    reader, items = mapping("a: true\nb: False\nc: yes\nd: on\n")
    assert reader.read_bool(items["a"][1], "'a'") is True
    assert reader.read_bool(items["b"][1], "'b'") is False
    assert reader.read_bool(items["c"][1], "'c'") is None
    assert reader.read_bool(items["d"][1], "'d'") is None
    assert [d.format() for d in reader.diagnostics] == [
        "f.yaml:3:4: error: 'c' must be true or false, not 'yes'\n"
        "  hint: write true or false (yes/no/on/off are not accepted)",
        "f.yaml:4:4: error: 'd' must be true or false, not 'on'\n"
        "  hint: write true or false (yes/no/on/off are not accepted)",
    ]


def test_numbers_dates_and_their_limits() -> None:
    reader, items = mapping(
        'n: 12\nq: "12"\nbig: 999\nf: 0.5\nbad: 1,5\nd: 2026-02-28\nx: 2026-02-30\n'
    )
    assert reader.read_int(items["n"][1], "'n'", minimum=1) == 12
    assert reader.read_int(items["q"][1], "'q'") is None  # quoted: text, not a number
    assert reader.read_int(items["big"][1], "'big'", minimum=1, maximum=100) is None
    assert reader.read_number(items["f"][1], "'f'") == 0.5
    assert reader.read_number(items["bad"][1], "'bad'") is None
    assert reader.read_date(items["d"][1], "'d'") == dt.date(2026, 2, 28)
    assert reader.read_date(items["x"][1], "'x'") is None
    assert [d.message for d in reader.diagnostics] == [
        "'q' must be a whole number, not '12'",
        "'big' must be at most 100, not 999",
        "'bad' must be a number, not '1,5'",
        "'x' '2026-02-30' is not a real calendar date",
    ]
    assert reader.diagnostics[1].hint == "use a whole number from 1 to 100"


def test_duplicate_keys_are_errors_naming_the_first_line() -> None:
    reader, items = mapping("title: A\nsummary: S\ntitle: B\n")
    assert reader.read_str(items["title"][1], "t") == "A"
    assert [d.format() for d in reader.diagnostics] == [
        "f.yaml:3:1: error: duplicate key 'title' (first defined on line 1)\n"
        "  hint: remove one of the two definitions"
    ]


def test_empty_and_null_strings() -> None:
    reader, items = mapping("a:\nb: ''\nc: null\n")
    assert reader.read_str(items["a"][1], "'a'") is None
    assert reader.read_str(items["b"][1], "'b'", allow_empty=True) == ""
    assert reader.read_str(items["c"][1], "'c'", allow_empty=True) == ""
    assert [d.message for d in reader.diagnostics] == ["'a' is empty"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: &x [1]\nb: *x\n", "f.yaml:2:4: error: YAML anchors and aliases"),
        ("a: *undefined\n", "f.yaml:1:4: error: YAML anchors and aliases"),
        ("a: !!python/object:os.system x\n", "f.yaml:1:4: error: YAML tag '!!python/object:os"),
        ("a: !!python/name:os.system\n", "f.yaml:1:4: error: YAML tag '!!python/name:os.system'"),
        ("a: !custom x\n", "f.yaml:1:4: error: YAML tag '!custom' is not allowed"),
        ("a: !!binary aGk=\n", "f.yaml:1:4: error: YAML tag '!!binary' is not allowed"),
        ("- !!set {a, b}\n", "f.yaml:1:3: error: YAML tag '!!set' is not allowed"),
    ],
)
def test_aliases_and_tags_are_refused(text: str, expected: str) -> None:
    node, problems = compose(text)
    assert node is None and len(problems) == 1 and problems[0].startswith(expected)


def test_core_tags_are_harmless_and_allowed() -> None:
    reader, items = mapping("a: !!str 012\nb: ! plain\n")
    assert reader.read_str(items["a"][1], "a") == "012"
    assert reader.read_str(items["b"][1], "b") == "plain"


def test_an_alias_bomb_is_refused_at_once() -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for level in "bcdefghi":
        previous = chr(ord(level) - 1)
        lines.append(f"{level}: &{level} [" + ", ".join([f"*{previous}"] * 9) + "]")
    start = time.perf_counter()
    node, problems = compose("\n".join(lines))
    assert node is None and problems[0].startswith("f.yaml:2:")
    assert time.perf_counter() - start < 1


def test_deep_nesting_is_refused_without_recursion() -> None:
    node, problems = compose("a: " + "[" * 100_000 + "]" * 100_000)
    assert node is None
    # the mapping is level 1, so the bracket that opens level MAX_DEPTH + 1 is reported
    assert problems == [
        f"f.yaml:1:{3 + MAX_DEPTH}: error: YAML is nested more than {MAX_DEPTH} levels "
        "deep\n  hint: flatten the structure; front matter and data files need only a few levels"
    ]
    node, problems = compose("a: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1))
    assert node is not None and problems == []


@pytest.mark.parametrize(
    ("text", "location", "message", "hint"),
    [
        ("a: 1\n\tb: 2\n", "3:1", "tab character used for indentation", "indent with spaces"),
        ('a: "open\nb: 2\n', "2:4", "a quoted value is not closed", "closing quote"),
        ("a: [1, 2\nb: 3\n", "2:4", "a '[' is not closed", "close it with ']'"),
        ("a: {x: 1\n", "2:4", "a '{' is not closed", "close it with '}'"),
        ("a: 1\n  b: 2\n", "3:4", "unexpected indentation", "same column"),
        ("title: A: B\n", "2:9", "an unquoted value contains ': '", "quote the value"),
        ("a:\n  - x\n  y: 1\n", "4:3", "list items and 'key: value' lines are mixed", "indent"),
        ("a: @x\n", "2:4", "a value cannot start with '@'", 'quote the value, e.g. "@..."'),
    ],
)
def test_syntax_errors_name_the_mistake_at_a_file_position(
    any_parser: str, text: str, location: str, message: str, hint: str
) -> None:
    node, problems = compose(text, offset=1)
    assert node is None and len(problems) == 1
    first, second = problems[0].split("\n")
    assert first == f"f.yaml:{location}: error: invalid YAML: {message}"
    assert second.startswith("  hint: ") and hint in second


def test_wrong_shapes_are_described() -> None:
    reader = YamlReader("f.yaml")
    node = reader.compose("- a\n- b\n")
    assert node is not None and reader.mapping(node, "front matter") is None
    scalar = reader.compose("just text")
    assert scalar is not None and reader.sequence(scalar, "'tags'") is None
    assert [d.message for d in reader.diagnostics] == [
        "front matter must be a mapping of 'key: value' lines, not a list",
        "'tags' must be a list, not the value 'just text'",
    ]


@pytest.fixture(params=["libyaml", "python"])
def any_parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with the C parser (when PyYAML has libyaml) and with the pure-Python one,
    as a PyYAML built without libyaml would: diagnostics must not depend on which."""
    if request.param == "python":
        monkeypatch.setattr("kbgen.yamlload._Loader", yaml.SafeLoader)
    elif not getattr(yaml, "__with_libyaml__", False):  # pragma: no cover
        pytest.skip("this PyYAML has no libyaml")
    return str(request.param)


def _nested_lists(levels: int) -> str:
    """`a:` then `levels` block lists, each item one level deeper (libyaml stops at 1,000)."""
    return "a:\n" + "".join(" " * (2 * level) + "-\n" for level in range(levels))


@pytest.mark.parametrize(
    ("text", "location"),
    [
        ("a: " + "[" * 100_000 + "]" * 100_000, f"1:{3 + MAX_DEPTH}"),
        ("a: " + "{b: " * 5_000 + "}" * 5_000, f"1:{4 + 4 * (MAX_DEPTH - 1)}"),
        (_nested_lists(2_000), f"{MAX_DEPTH + 1}:{2 * (MAX_DEPTH - 1) + 1}"),
    ],
    ids=["flow-lists", "flow-mappings", "block-lists"],
)
def test_depth_limit_is_kbgens_whatever_the_parser(
    any_parser: str, text: str, location: str
) -> None:
    """PyYAML 6.0.4's libyaml refuses 1,000 levels with its own message, reading ahead: kbgen's
    50-level diagnostic comes first anyway, with kbgen's position and hint."""
    node, problems = compose(text)
    assert node is None
    assert problems == [
        f"f.yaml:{location}: error: YAML is nested more than {MAX_DEPTH} levels deep\n"
        "  hint: flatten the structure; front matter and data files need only a few levels"
    ]


def test_other_syntax_errors_keep_the_c_parsers_diagnostic(any_parser: str) -> None:
    """The pure-Python re-read only adds kbgen's own checks; a plain syntax error is reported
    as before (and a depth below the limit with an error after it is a syntax error)."""
    text = "a: " + "[" * (MAX_DEPTH - 1) + "x, @y\n"
    _, problems = compose(text, offset=1)
    assert problems == [
        f"f.yaml:2:{6 + MAX_DEPTH}: error: invalid YAML: a value cannot start with '@'\n"
        '  hint: quote the value, e.g. "@..."'
    ]
