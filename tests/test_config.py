"""config.yaml -> Config: every problem at once, with its line, and a safe output folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kbgen.config import load_config
from kbgen.config_paths import MARKER_FILE, check_output_dir
from kbgen.config_schema import MAX_REVIEW_INTERVAL_DAYS
from kbgen.config_types import OutputSetting, shown_path

SECTIONS = """\
sections:
  - id: mechanism
    title: Mechanism
    fields:
      status: {label: Status, type: enum, values: [established, contested]}
      dose: {type: number, required: false}
"""


def project(tmp_path: Path, config: str | bytes) -> Path:
    root = tmp_path / "kb"
    for folder in ("content", "templates", "static"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    path = root / "config.yaml"
    path.write_bytes(config if isinstance(config, bytes) else config.encode("utf-8"))
    return path


def problems(tmp_path: Path, config: str | bytes) -> list[str]:
    loaded, diagnostics = load_config(project(tmp_path, config))
    assert loaded is None
    return [d.format() for d in diagnostics]


def test_a_minimal_config_gets_the_documented_defaults(tmp_path: Path) -> None:
    config, diagnostics = load_config(project(tmp_path, "title: KB\n" + SECTIONS))
    assert diagnostics == [] and config is not None
    root = tmp_path / "kb"
    assert (config.title, config.language, config.base_url) == ("KB", "en", "")
    assert config.output_dir == root / "site" and config.content_dir == root / "content"
    assert config.directory_urls and config.search and config.review_interval_days == 365
    assert config.markdown.raw_html == "escape" and config.markdown.toc_depth == 3
    assert config.feed_entries == 20
    (section,) = config.sections
    assert [(f.name, f.type, f.values, f.required) for f in section.fields] == [
        ("status", "enum", ("established", "contested"), True),
        ("dose", "number", (), False),
    ]


def test_paths_in_messages_are_shown_from_the_project_root(tmp_path: Path) -> None:
    config, _ = load_config(project(tmp_path, "title: KB\n" + SECTIONS))
    assert config is not None
    root = tmp_path / "kb"
    assert config.rel(root / "content" / "a.md") == "content/a.md"
    assert config.rel(root) == shown_path(root, root) == "."  # never an empty name
    outside = tmp_path / "elsewhere" / "x.md"
    assert config.rel(outside) == shown_path(outside, root) == str(outside)


def test_base_url_must_be_http_and_gets_a_trailing_slash(tmp_path: Path) -> None:
    config, _ = load_config(project(tmp_path, "title: KB\nbase_url: https://kb.org\n" + SECTIONS))
    assert config is not None and config.base_url == "https://kb.org/"
    assert problems(tmp_path, "title: KB\nbase_url: kb.org\n" + SECTIONS) == [
        "config.yaml:2:11: error: base_url 'kb.org' must start with http:// or https://\n"
        "  hint: page URLs are made by appending their paths to it: write the site's root, "
        "for example https://kb.example.org/"
    ]


def test_base_url_with_spaces_query_or_no_host_is_refused(tmp_path: Path) -> None:
    for url, problem in (("'https://kb.org/my kb/'", "must not contain spaces"),
                         ("https://kb.org/?q=1", "must not have a ?query or #fragment"),
                         ("https://kb.org/#top", "must not have a ?query or #fragment"),
                         ("https:///path/", "must name a host"),
                         ("https://kb.org:99999/", "is not a valid URL")):
        found = problems(tmp_path, f"title: KB\nbase_url: {url}\n" + SECTIONS)
        assert len(found) == 1 and problem in found[0], (url, found)


def test_language_must_be_a_language_tag(tmp_path: Path) -> None:
    for good in ("en", "pt-BR", "zh-Hant-TW"):
        config, _ = load_config(project(tmp_path, f"title: KB\nlanguage: {good}\n" + SECTIONS))
        assert config is not None and config.language == good
    for bad in ("'en\"><script>'", "english language", "e", "'-en'"):
        found = problems(tmp_path, f"title: KB\nlanguage: {bad}\n" + SECTIONS)
        assert len(found) == 1 and "must be a language tag" in found[0], (bad, found)


def test_every_problem_is_reported_at_once_in_file_order(tmp_path: Path) -> None:
    config = (
        "title: KB\nsearh: true\ndirectory_urls: yes\nreview_interval_days: 0\n"
        "markdown: {raw_html: sanitise, toc_depth: 0}\n" + SECTIONS
    )
    assert problems(tmp_path, config) == [
        "config.yaml:2:1: error: unknown key 'searh' in config.yaml\n"
        "  hint: did you mean 'search'?",
        "config.yaml:3:17: error: 'directory_urls' must be true or false, not 'yes'\n"
        "  hint: write true or false (yes/no/on/off are not accepted)",
        "config.yaml:4:23: error: 'review_interval_days' must be at least 1, not 0\n"
        f"  hint: use a whole number from 1 to {MAX_REVIEW_INTERVAL_DAYS}",
        "config.yaml:5:22: error: markdown.raw_html must be one of escape, sanitize, allow, "
        "not 'sanitise'\n  hint: did you mean 'sanitize'?",
        "config.yaml:5:43: error: 'toc_depth' must be at least 1, not 0\n"
        "  hint: use a whole number from 1 to 6",
    ]


def test_a_review_interval_that_would_overflow_dates_is_refused(tmp_path: Path) -> None:
    assert problems(tmp_path, "title: KB\nreview_interval_days: 99999999\n" + SECTIONS) == [
        f"config.yaml:2:23: error: 'review_interval_days' must be at most "
        f"{MAX_REVIEW_INTERVAL_DAYS}, not 99999999\n"
        f"  hint: use a whole number from 1 to {MAX_REVIEW_INTERVAL_DAYS}"
    ]


def test_missing_keys_point_at_their_mapping(tmp_path: Path) -> None:
    config = "description: x\nsections:\n  - title: No id\n  - id: ok\n"
    assert problems(tmp_path, config) == [
        "config.yaml:1:1: error: missing required key 'title' in config.yaml\n"
        "  hint: add a line 'title: ...'",
        "config.yaml:3:5: error: missing required key 'id' in section 1\n"
        "  hint: add a line 'id: ...'",
        "config.yaml:4:5: error: missing required key 'title' in section 2\n"
        "  hint: add a line 'title: ...'",
    ]


def test_section_and_field_declarations_are_checked(tmp_path: Path) -> None:
    config = (
        "title: KB\nsections:\n  - id: Side Effects\n    title: S\n  - id: glossary\n    title: G\n"
        "  - id: a\n    title: A\n  - id: a\n    title: A2\n"
        "  - id: b\n    title: B\n    fields:\n      Grade: {type: text}\n"
        "      level: {type: enum}\n      when: {type: date}\n"
    )
    assert [p.split("\n")[0] for p in problems(tmp_path, config)] == [
        "config.yaml:3:9: error: section id 'Side Effects' must be lowercase letters, digits "
        "and hyphens",
        "config.yaml:5:9: error: section id 'glossary' is reserved for generated pages",
        "config.yaml:9:9: error: duplicate section id 'a' (first declared on line 7)",
        "config.yaml:14:7: error: field name 'Grade' must be lowercase letters, digits and _",
        "config.yaml:15:7: error: enum field 'level' needs 'values'",
        "config.yaml:16:20: error: field type must be one of text, enum, number, boolean, "
        "table, not 'date'",
    ]


TABLE = """title: KB
sections:
  - id: safety
    title: Safety
    fields:
      interactions:
        label: Interactions at a glance
        type: table
        required: false
        columns:
          drug:       {label: Drug or class, type: text, required: true}
          seriousness: {label: How serious, type: enum, values: [serious, minor]}
          source:     {label: Source, type: reference}
          note:       {type: text, required: false}
"""


def test_a_table_field_declares_typed_columns(tmp_path: Path) -> None:
    config, diagnostics = load_config(project(tmp_path, TABLE))
    assert diagnostics == [] and config is not None
    (field,) = config.sections[0].fields
    assert (field.name, field.label, field.type, field.required) == (
        "interactions", "Interactions at a glance", "table", False)
    assert [(c.name, c.label, c.type, c.values, c.required) for c in field.columns] == [
        ("drug", "Drug or class", "text", (), True),
        ("seriousness", "How serious", "enum", ("serious", "minor"), True),
        ("source", "Source", "reference", (), True),
        ("note", "Note", "text", (), False),
    ]


def test_table_declarations_are_checked_at_their_lines(tmp_path: Path) -> None:
    config = (
        "title: KB\nsections:\n  - id: s\n    title: S\n    fields:\n"
        "      rows: {type: table}\n"
        "      more:\n        type: table\n        columns:\n"
        "          Drug: {type: text}\n          level: {type: enum}\n"
        "          when: {type: date}\n          x: {type: text, lable: X}\n"
        "      plain: {type: text, columns: {a: {type: text}}}\n"
        "      empty: {type: table, columns: {}}\n"
    )
    assert [p.split("\n")[0] for p in problems(tmp_path, config)] == [
        "config.yaml:6:7: error: table field 'rows' needs 'columns'",
        "config.yaml:10:11: error: column name 'Drug' must be lowercase letters, digits and _",
        "config.yaml:11:11: error: enum field 'more.level' needs 'values'",
        "config.yaml:12:24: error: column type must be one of text, enum, reference, not 'date'",
        "config.yaml:13:27: error: unknown key 'lable' in column 'more.x'",
        "config.yaml:14:27: error: 'columns' is only for table fields; 'plain' is a text field",
        "config.yaml:15:37: error: table field 'empty' declares no columns",
    ]


def test_unreadable_or_malformed_config_files(tmp_path: Path) -> None:
    assert problems(tmp_path, b"title: Caf\xe9\n") == [
        "config.yaml:1:11: error: config file is not valid UTF-8 (byte 0xe9)\n"
        "  hint: save the file as UTF-8"
    ]
    assert problems(tmp_path, "") == [
        "config.yaml:1:1: error: config file is empty\n"
        "  hint: add at least 'title:' and 'sections:'"
    ]
    assert problems(tmp_path, "- a\n") == [
        "config.yaml:1:1: error: the config file must be a mapping of 'key: value' lines, not a "
        "list\n  hint: write one 'key: value' per line"
    ]
    config, _ = load_config(project(tmp_path, "\ufefftitle: KB\n" + SECTIONS))
    assert config is not None  # a BOM is fine


def test_a_missing_config_file_names_the_path_given(tmp_path: Path) -> None:
    config, diagnostics = load_config(tmp_path / "nowhere" / "config.yaml")
    assert config is None
    assert [d.format() for d in diagnostics] == [
        f"{tmp_path}/nowhere/config.yaml: error: config file not found\n"
        "  hint: run the command in the project folder, or pass --config PATH/config.yaml"
    ]
    _, diagnostics = load_config(tmp_path)
    assert diagnostics[0].message == "the config path is a folder"


def test_digest_changes_with_the_file_and_the_output(tmp_path: Path) -> None:
    path = project(tmp_path, "title: KB\n" + SECTIONS)
    first, _ = load_config(path)
    other_output, _ = load_config(path, tmp_path / "elsewhere")
    path.write_text("title: KB2\n" + SECTIONS, "utf-8")
    second, _ = load_config(path)
    assert first and second and other_output
    assert len({first.digest, second.digest, other_output.digest}) == 3


# -- output folder -------------------------------------------------------------------------


def refusal(output: Path, root: Path, written: str = "out") -> str | None:
    sources = (root / "content", root / "templates", root / "static")
    found = check_output_dir(output, root, sources, OutputSetting(written, "config.yaml", (5, 13)))
    return found[0].message if found else None


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    folder = tmp_path / "home" / "kb"
    for name in ("content", "templates", "static"):
        (folder / name).mkdir(parents=True)
    return folder


@pytest.mark.parametrize(
    ("target", "problem"),
    [
        ("/", "is the filesystem root"),
        ("..", "is your home folder"),
        (".", "is the project folder"),
        ("content", "is the source folder 'content'"),
        ("static/site", "is inside the source folder 'static'"),
        ("config.yaml", "exists and is not a folder"),
    ],
)
def test_output_refusals(root: Path, target: str, problem: str) -> None:
    (root / "config.yaml").write_text("x", "utf-8")
    message = refusal((root / target), root, target)
    assert message == (
        f"refusing to use output_dir '{target}': it {problem}; a build replaces the whole "
        "output folder"
    )


def test_a_parent_of_the_project_and_a_folder_containing_sources_are_refused(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "elsewhere"))
    assert "is a parent of the project folder" in str(refusal(root.parent, root, ".."))
    nested = root / "src"
    sources = (nested / "content",)
    (nested / "content").mkdir(parents=True)
    found = check_output_dir(nested, root, sources, OutputSetting("src", "config.yaml", None))
    assert "contains the source folder 'src/content'" in found[0].message
    assert found[0].line is None  # no line known: reported against the file, not a line


def test_foreign_non_empty_folders_and_git_repositories_are_refused(root: Path) -> None:
    foreign = root / "public"
    foreign.mkdir()
    assert refusal(foreign, root) is None  # empty: fine
    (foreign / "notes.txt").write_text("mine", "utf-8")
    assert "no .kbgen-site marker file" in str(refusal(foreign, root))
    (foreign / MARKER_FILE).write_text("{}", "utf-8")
    assert refusal(foreign, root) is None  # a previous build made it
    (foreign / ".git").mkdir()
    assert "holds a .git repository" in str(refusal(foreign, root))


def test_a_symlink_is_judged_by_its_target_and_named_in_the_message(root: Path) -> None:
    link = root / "out"
    os.symlink(root, link)
    assert refusal(link, root) == (
        f"refusing to use output_dir 'out' (which resolves to '{root}'): it is the project "
        "folder; a build replaces the whole output folder"
    )


def test_output_refusal_from_the_command_line_has_no_file_position(root: Path) -> None:
    found = check_output_dir(
        root, root, (), OutputSetting(".", "config.yaml", None, from_cli=True)
    )
    assert found[0].format() == (
        "command line: error: refusing to use --output '.': it is the project folder; a build "
        "replaces the whole output folder\n"
        "  hint: point --output at a new folder, or at one kbgen built before; nothing was "
        "deleted"
    )


# -- cache folder --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "problem"),
    [
        ("content", "is the source folder 'content'"),
        ("templates", "is the source folder 'templates'"),
        ("static/cache", "is inside the source folder 'static'"),
        ("site/.cache", "is inside the output folder 'site'"),
        (".", "is the project folder"),
        ("notes.txt", "exists and is not a folder"),
    ],
)
def test_cache_dir_in_or_around_a_source_or_output_folder_is_refused_at_its_line(
    tmp_path: Path, target: str, problem: str
) -> None:
    (tmp_path / "kb").mkdir()
    (tmp_path / "kb" / "notes.txt").write_text("mine", "utf-8")
    found = problems(tmp_path, f"title: KB\ncache_dir: {target}\n" + SECTIONS)
    assert found == [
        f"config.yaml:2:12: error: refusing to use cache_dir '{target}': it {problem}\n"
        "  hint: point cache_dir at a folder of its own, such as .kbgen-cache"
    ]


def test_a_cache_dir_containing_a_source_folder_is_refused(tmp_path: Path) -> None:
    path = project(tmp_path, "title: KB\ncontent_dir: cache/content\ncache_dir: cache\n" + SECTIONS)
    (path.parent / "cache" / "content").mkdir(parents=True)
    _, diagnostics = load_config(path)
    assert [d.message for d in diagnostics] == [
        "refusing to use cache_dir 'cache': it contains the source folder 'cache/content'"
    ]


def test_readability_thresholds_are_optional_validated_numbers(tmp_path: Path) -> None:
    config, _ = load_config(project(tmp_path, "title: KB\n" + SECTIONS))
    assert config is not None and config.readability is None  # not checked
    config, _ = load_config(project(tmp_path, "title: KB\nreadability:\n" + SECTIONS))
    assert config is not None and config.readability is not None
    assert (config.readability.in_short_max_grade, config.readability.body_max_grade) == (8, 12)
    config, _ = load_config(
        project(tmp_path, "title: KB\nreadability: {body_max_grade: 10.5}\n" + SECTIONS))
    assert config is not None and config.readability is not None
    assert (config.readability.in_short_max_grade, config.readability.body_max_grade) == (8, 10.5)
    text = ("title: KB\nreadability:\n  in_short_max_grade: eight\n  body_max_grade: 80\n"
            "  median: 10\n" + SECTIONS)
    assert [p.split("\n")[0] for p in problems(tmp_path, text)] == [
        "config.yaml:3:23: error: readability.in_short_max_grade must be a number, not 'eight'",
        "config.yaml:4:19: error: readability.body_max_grade must be a grade above 0 and at "
        "most 30, not 80",
        "config.yaml:5:3: error: unknown key 'median' in 'readability'",
    ]
    assert problems(tmp_path, "title: KB\nreadability: 8\n" + SECTIONS)[0].startswith(
        "config.yaml:2:14: error: 'readability' must be a mapping")


def test_render_time_limit_defaults_to_30_seconds_and_is_validated(tmp_path: Path) -> None:
    config, _ = load_config(project(tmp_path, "title: KB\n" + SECTIONS))
    assert config is not None and config.render_time_limit == 30
    found = problems(tmp_path, "title: KB\nrender_time_limit: 0\n" + SECTIONS)
    assert len(found) == 1 and found[0].startswith("config.yaml:2:20: error: ")
