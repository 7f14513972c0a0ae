"""Front matter: split from the body, validated against the section's fields, positioned."""

from __future__ import annotations

import datetime as dt

import pytest

from kbgen.config_types import ColumnSpec, FieldSpec, SectionSpec
from kbgen.frontmatter import parse_front_matter, split_front_matter
from kbgen.model import FrontMatter

TODAY = dt.date(2026, 11, 21)
ROUTES = SectionSpec(
    "routes",
    "Routes",
    "",
    1,
    (
        FieldSpec("bioavailability", "Bioavailability", "text"),
        FieldSpec("approval", "Approval", "enum", ("approved", "off-label", "investigational")),
        FieldSpec("dose_mg", "Dose", "number", required=False),
        FieldSpec("licensed", "Licensed", "boolean", required=False),
    ),
)
GOOD = (
    "title: Oral\nsummary: By mouth.\nlast_reviewed: 2026-11-01\n"
    "bioavailability: 20%\napproval: off-label"
)


def parse(
    front: str, *, section: SectionSpec | None = ROUTES, is_article: bool = True
) -> tuple[FrontMatter | None, list[str]]:
    split, problems = split_front_matter(f"---\n{front}\n---\nBody.\n", "content/routes/oral.md")
    assert split is not None, problems
    meta, problems = parse_front_matter(
        split, "content/routes/oral.md", section, TODAY, 365, is_article=is_article
    )
    ordered = sorted(problems, key=lambda d: (d.line or 0, d.col or 0))  # as the CLI prints
    return meta, [d.format().replace("content/routes/oral.md:", "") for d in ordered]


def test_split_finds_the_yaml_and_the_body_line() -> None:
    split, problems = split_front_matter("---\na: 1\nb: 2\n---\nBody\nmore\n", "x.md")
    assert problems == [] and split is not None
    assert (split.yaml_text, split.body, split.yaml_line, split.body_line) == (
        "a: 1\nb: 2",
        "Body\nmore\n",
        1,
        5,
    )
    split, _ = split_front_matter("---\na: 1\n...\nBody", "x.md")
    assert split is not None and split.body == "Body"  # YAML's document end marker closes too


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "x.md:1:1: error: the file is empty"),
        ("   \n\n", "x.md:1:1: error: the file is empty"),
        (
            "# Title\n",
            "x.md:1:1: error: missing front matter (the first line is '# Title', not '---')",
        ),
        (
            "---\ntitle: A\n",
            "x.md:1:1: error: front matter is not closed: no '---' line follows the opening '---'",
        ),
    ],
)
def test_split_errors(text: str, message: str) -> None:
    split, problems = split_front_matter(text, "x.md")
    assert split is None and problems[0].format().split("\n")[0] == message
    assert problems[0].hint


def test_a_valid_article_parses_to_front_matter_with_typed_fields() -> None:
    meta, problems = parse(GOOD + "\ndose_mg: 0.5\nlicensed: false\ntags: [oral, no]\ndraft: true")
    assert problems == [] and meta is not None
    assert (meta.title, meta.summary) == ("Oral", "By mouth.")
    assert meta.last_reviewed == dt.date(2026, 11, 1)
    assert dict(meta.fields) == {
        "bioavailability": "20%",
        "approval": "off-label",
        "dose_mg": 0.5,
        "licensed": False,
    }
    assert meta.tags == ("oral", "no") and meta.draft is True
    assert meta.key_positions["title"] == (2, 1)


def test_all_missing_keys_are_reported_together() -> None:
    meta, problems = parse("tags: [a]")
    assert meta is None
    assert problems == [
        "1:1: error: missing required front-matter key 'title'\n"
        "  hint: add a line 'title: ...' between the '---' lines",
        "1:1: error: missing required front-matter key 'summary'\n"
        "  hint: add a line 'summary: ...' between the '---' lines",
        "1:1: error: missing required front-matter key 'last_reviewed'\n"
        "  hint: add a line 'last_reviewed: ...' between the '---' lines",
        "1:1: error: missing field 'bioavailability' required by this section\n"
        "  hint: add 'bioavailability: ...'",
        "1:1: error: missing field 'approval' required by this section\n"
        "  hint: add 'approval: ...' (one of: approved, off-label, investigational)",
    ]


def test_every_wrong_type_is_reported_in_one_run_at_its_value() -> None:
    front = (
        "title: [Oral]\nsummary: {a: b}\nlast_reviewed: next week\nbioavailability: 20%\n"
        "approval: approvd\ndose_mg: fifty\nlicensed: yes\ndraft: no\norder: first\n"
        "tags: oral\naliases: by mouth\nrelated: {a: b}\nreviewed_by: [[x]]"
    )
    meta, problems = parse(front)
    assert meta is None
    assert [p.split("\n")[0] for p in problems] == [
        "2:8: error: 'title' must be text, not a list",
        "3:10: error: 'summary' must be text, not a mapping",
        "4:16: error: 'last_reviewed' must be a date written YYYY-MM-DD, not 'next week'",
        "6:11: error: 'approval' must be one of: approved, off-label, investigational; "
        "not 'approvd'",
        "7:10: error: 'dose_mg' must be a number, not 'fifty'",
        "8:11: error: 'licensed' must be true or false, not 'yes'",
        "9:8: error: 'draft' must be true or false, not 'no'",
        "10:8: error: 'order' must be a whole number, not 'first'",
        "11:7: error: 'tags' must be a list, not the value 'oral'",
        "12:10: error: 'aliases' must be a list, not the value 'by mouth'",
        "13:10: error: 'related' must be a list, not a mapping",
        "14:15: error: each entry of 'reviewed_by' must be text, not a list",
    ]
    assert "hint: did you mean 'approved'?" in problems[3]


def test_dates_in_the_future_are_errors_and_old_reviews_warnings() -> None:
    _, problems = parse(GOOD.replace("2026-11-01", "2999-01-01"))
    assert problems == [
        "4:16: error: last_reviewed 2999-01-01 is in the future\n"
        "  hint: use the date the article was actually reviewed (today is 2026-11-21)"
    ]
    meta, problems = parse(GOOD.replace("2026-11-01", "2024-01-01"))
    assert meta is not None
    assert problems == [
        "4:16: warning: review overdue: last reviewed 2024-01-01, due 2024-12-31\n"
        "  hint: review the article and update last_reviewed"
    ]


def test_unknown_keys_warn_with_a_suggestion() -> None:
    meta, problems = parse(GOOD + "\nsumary: typo\nbioavailabilty: x")
    assert meta is not None
    assert problems == [
        "7:1: warning: unknown front-matter key 'sumary'\n  hint: did you mean 'summary'?",
        "8:1: warning: unknown front-matter key 'bioavailabilty'\n"
        "  hint: did you mean 'bioavailability'?",
    ]


def test_tags_must_be_usable_in_urls_and_section_must_match_the_folder() -> None:
    _, problems = parse(GOOD + "\ntags: [a/b, '..']\nsection: mechanism")
    assert [p.split("\n")[0] for p in problems] == [
        "7:7: error: tag 'a/b' cannot be used in a URL",
        "7:7: error: tag '..' cannot be used in a URL",
        "8:10: error: 'section: mechanism' does not match the folder 'routes'",
    ]


def test_yaml_errors_carry_file_lines_not_block_lines() -> None:
    _, problems = parse('title: "Oral\nsummary: s')
    assert problems == [
        "2:8: error: invalid YAML: a quoted value is not closed\n"
        "  hint: add the closing quote on the same line, or remove the opening one"
    ]


def test_section_pages_need_no_review_date_or_typed_fields() -> None:
    meta, problems = parse("title: Routes\nsummary: All routes.", is_article=False)
    assert problems == [] and meta is not None and meta.last_reviewed is None


def test_empty_front_matter() -> None:
    split, _ = split_front_matter("---\n---\nBody", "x.md")
    assert split is not None
    meta, problems = parse_front_matter(split, "x.md", None, TODAY, 365, is_article=True)
    assert meta is None and [d.format() for d in problems] == [
        "x.md:2:1: error: front matter is empty\n  hint: add title, summary and last_reviewed"
    ]


# -- in_short: the plain-language summary ----------------------------------------------


def test_in_short_is_optional_and_folded_to_one_line() -> None:
    meta, problems = parse(GOOD)
    assert problems == [] and meta is not None and meta.in_short == ""
    meta, problems = parse(GOOD + "\nin_short: >-\n  Ketamine is a medicine.\n  It can help.")
    assert problems == [] and meta is not None
    assert meta.in_short == "Ketamine is a medicine. It can help."


def test_in_short_must_be_text() -> None:
    meta, problems = parse(GOOD + "\nin_short: [a, b]")
    assert meta is None
    assert problems[0].startswith("7:11: error: 'in_short' must be text, not a list")


@pytest.mark.parametrize(
    ("value", "position", "what"),
    [
        ("It helps [@smith2020].", "7:20", "a citation ([@key])"),
        ('"It helps [[trd]] a lot."', "7:21", "a wiki link ([[...]])"),
        ("It helps, see [this](x.md).", "7:25", "a Markdown link ([text](url))"),
        ("It <b>helps</b>.", "7:14", "HTML"),
        ("It helps `a lot`.", "7:20", "code (`...`)"),
        ("It **helps**.", "7:14", "emphasis (**...**)"),
    ],
)
def test_markup_in_in_short_is_an_error_at_its_characters(
    value: str, position: str, what: str
) -> None:
    meta, problems = parse(GOOD + f"\nin_short: {value}")
    assert meta is None
    expected = f"{position}: error: 'in_short' is plain text; it holds {what}"
    assert problems[0].split("\n")[0] == expected


def test_markup_in_a_block_in_short_is_found_on_its_own_line() -> None:
    meta, problems = parse(GOOD + "\nin_short: >-\n  First sentence.\n  Second one [@key].")
    assert meta is None
    assert problems[0].startswith("9:14: error: 'in_short' is plain text; it holds a citation")
    assert "hint: cite the source in the body, not here" in problems[0]


def test_a_long_in_short_is_a_warning() -> None:
    meta, problems = parse(GOOD + "\nin_short: " + "Short words here. " * 40)
    assert meta is not None
    assert problems == [
        "7:11: warning: 'in_short' is 719 characters; keep it under 600 (2-4 short sentences)\n"
        "  hint: move detail into the body"
    ]


# -- table fields ----------------------------------------------------------------------

SAFETY = SectionSpec(
    "safety",
    "Safety",
    "",
    1,
    (
        FieldSpec(
            "interactions",
            "Interactions",
            "table",
            required=False,
            columns=(
                ColumnSpec("drug", "Drug", "text"),
                ColumnSpec("seriousness", "How serious", "enum", ("serious", "minor")),
                ColumnSpec("source", "Source", "reference"),
                ColumnSpec("note", "Note", "text", required=False),
            ),
        ),
    ),
)
HEAD = "title: T\nsummary: S.\nlast_reviewed: 2026-11-01\ninteractions:\n"


def test_a_table_field_reads_rows_and_cites_its_reference_cells() -> None:
    front = (
        HEAD + "  - drug: Opioids\n    seriousness: serious\n    source: label-2022\n"
        "  - {drug: Alcohol,  note: 'Avoid it.', seriousness: minor, source: smith-2020}"
    )
    meta, problems = parse(front, section=SAFETY)
    assert problems == [] and meta is not None
    assert meta.fields["interactions"] == (
        (("drug", "Opioids"), ("seriousness", "serious"), ("source", "label-2022")),
        (("drug", "Alcohol"), ("seriousness", "minor"), ("source", "smith-2020"),
         ("note", "Avoid it.")),
    )
    assert [(c.key, c.line, c.col) for c in meta.field_citations] == [
        ("label-2022", 8, 13), ("smith-2020", 9, 69)]


def test_every_bad_cell_is_reported_at_its_position_with_a_hint() -> None:
    front = (
        HEAD + "  - drug: Opioids\n    seriousnes: serious\n    source: '[@label]'\n"
        "  - drug: [a]\n    seriousness: serios\n    source: label\n"
        "  - just text"
    )
    meta, problems = parse(front, section=SAFETY)
    assert meta is None
    assert [p.split("\n")[0] for p in problems] == [
        "6:5: error: row 1 of 'interactions' has no 'seriousness' (How serious)",
        "7:5: error: unknown column 'seriousnes' in row 1 of 'interactions'",
        "8:13: error: 'source' in row 1 of 'interactions' must be one reference key, "
        "not '[@label]'",
        "9:11: error: 'drug' in row 2 of 'interactions' must be text, not a list",
        "10:18: error: 'seriousness' in row 2 of 'interactions' must be one of: serious, minor; "
        "not 'serios'",
        "12:5: error: row 3 of 'interactions' must be a mapping of 'key: value' lines, "
        "not the value 'just text'",
    ]
    assert "hint: did you mean 'seriousness'?" in problems[1]
    assert "hint: write the bare key from content/references.yaml, e.g. 'label'" in problems[2]
    assert "hint: did you mean 'serious'?" in problems[4]


def test_a_table_must_be_a_list_and_a_required_one_needs_rows() -> None:
    meta, problems = parse(HEAD.replace("interactions:\n", "interactions: many"), section=SAFETY)
    assert meta is None and problems[0].startswith("5:15: error: 'interactions' must be a list")
    required = SectionSpec("safety", "Safety", "", 1, (
        FieldSpec("interactions", "I", "table", columns=(ColumnSpec("drug", "Drug", "text"),)),))
    meta, problems = parse(HEAD + "  []", section=required)
    assert meta is None
    assert problems[0].startswith("6:3: error: 'interactions' needs at least one row")
