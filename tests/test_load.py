"""load: bytes -> text (strict UTF-8, no control characters) -> a Page, with positions."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from kbgen.config import load_config
from kbgen.config_types import Config
from kbgen.discover import SourceFile
from kbgen.incremental.workers import shrinking_chunks
from kbgen.load import (
    MAX_PAGE_BYTES,
    decode_text,
    identify,
    load_page,
    read_source,
)
from kbgen.markup import MarkupEngine

TODAY = dt.date(2026, 11, 21)
PAGE = "---\ntitle: Alpha\nsummary: S.\nlast_reviewed: 2026-11-01\n---\nBody with [[beta]].\n"


def decoded(data: bytes) -> tuple[str | None, list[str]]:
    text, problems = decode_text(data, "content/a.md")
    return text, [d.format() for d in problems]


def test_bom_is_dropped_and_line_ends_become_lf() -> None:
    assert decoded("\ufeff---\r\ntitle: A\r\n---\rBody\r".encode()) == (
        "---\ntitle: A\n---\nBody\n",
        [],
    )
    assert decoded(b"a\tb\n") == ("a\tb\n", [])  # tabs are fine


def test_invalid_utf8_points_at_the_byte() -> None:
    assert decoded("---\ntitle: Caf\u00e9\n".encode("latin-1")) == (
        None,
        [
            "content/a.md:2:11: error: the file is not valid UTF-8 (byte 0xe9)\n"
            "  hint: save the file as UTF-8 text"
        ],
    )


def test_binary_files_are_named_as_such() -> None:
    assert decoded(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe")[1] == [
        "content/a.md:1:1: error: the file is binary, not Markdown text\n"
        "  hint: save the file as UTF-8 text"
    ]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"ok\nA NUL\x00 here", "content/a.md:2:6: error: the file contains a NUL byte"),
        (b"x\x1b[2J", "content/a.md:1:2: error: the file contains the control character U+001B"),
        (b"mark \x1a", "content/a.md:1:6: error: the file contains the control character U+001A"),
        (b"del \x7f", "content/a.md:1:5: error: the file contains the control character U+007F"),
        (
            "csi \u009b".encode(),
            "content/a.md:1:5: error: the file contains the control character U+009B",
        ),
    ],
)
def test_control_characters_are_refused_at_their_position(data: bytes, expected: str) -> None:
    text, problems = decoded(data)
    assert text is None
    assert problems == [expected + "\n  hint: remove it; only tabs and line breaks are allowed"]


def source(root: Path, rel: str) -> SourceFile:
    return SourceFile(rel, root / "content" / rel, f"content/{rel}")


def test_a_page_larger_than_the_limit_is_refused_before_reading_it_all(tmp_path: Path) -> None:
    page = tmp_path / "content" / "mechanism" / "huge.md"
    page.parent.mkdir(parents=True)
    with page.open("wb") as handle:
        handle.truncate(MAX_PAGE_BYTES + 1024 * 1024)  # sparse: costs no disk
    data, problems = read_source(source(tmp_path, "mechanism/huge.md"))
    assert data is None
    assert [d.format() for d in problems] == [
        "content/mechanism/huge.md:1:1: error: the file is 21 MB; pages are limited to 20 MB\n"
        "  hint: split the article"
    ]


def test_a_missing_file_is_a_diagnostic(tmp_path: Path) -> None:
    data, problems = read_source(source(tmp_path, "mechanism/gone.md"))
    assert data is None
    assert [d.format() for d in problems] == [
        "content/mechanism/gone.md:1:1: error: cannot read the file: No such file or directory\n"
        "  hint: check that it still exists and is a readable file"
    ]


@pytest.mark.parametrize(
    ("rel", "kind", "section", "slug"),
    [
        ("index.md", "home", None, "index"),
        ("routes/_index.md", "section", "routes", "routes"),
        ("routes/oral-route_2.md", "article", "routes", "oral-route_2"),
    ],
)
def test_identify_derives_kind_and_slug_from_the_path(
    rel: str, kind: str, section: str | None, slug: str
) -> None:
    page, problems = identify(SourceFile(rel, Path(rel), rel), "text", b"text")
    assert problems == [] and page is not None
    assert (page.kind, page.section, page.slug) == (kind, section, slug)


def test_a_file_name_that_is_not_a_slug_gets_a_suggestion() -> None:
    rel = "routes/Oral Route (2).md"
    page, problems = identify(SourceFile(rel, Path(rel), f"content/{rel}"), "t", b"t")
    assert page is None
    assert [d.format() for d in problems] == [
        "content/routes/Oral Route (2).md:1:1: error: file name 'Oral Route (2).md' cannot be "
        "a URL slug\n  hint: rename it to 'oral-route-2.md' (letters, digits, '-' and '_')"
    ]


def config_for(tmp_path: Path) -> Config:
    for folder in ("content/mechanism", "templates"):
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
    (tmp_path / "config.yaml").write_text(
        "title: KB\nsections:\n  - id: mechanism\n    title: M\n", "utf-8"
    )
    config, problems = load_config(tmp_path / "config.yaml")
    assert config is not None, problems
    return config


def test_load_page_end_to_end_keeps_file_positions(tmp_path: Path) -> None:
    config = config_for(tmp_path)
    (tmp_path / "content/mechanism/alpha.md").write_text("\ufeff" + PAGE, "utf-8")
    engine = MarkupEngine(config.markdown)
    page, problems = load_page(source(tmp_path, "mechanism/alpha.md"), config, engine, TODAY)
    assert problems == [] and page is not None
    assert (page.slug, page.meta.title, page.body_line) == ("alpha", "Alpha", 6)
    (link,) = page.markup.links
    assert (link.target, link.line, link.col) == ("beta", 6, 11)


def test_load_page_reports_front_matter_and_markup_problems_together(tmp_path: Path) -> None:
    config = config_for(tmp_path)
    bad = PAGE.replace("title: Alpha", "title: Alpha\ndraft: yes").replace(
        "[[beta]]", "[x](javascript:alert(1))"
    )
    (tmp_path / "content/mechanism/alpha.md").write_text(bad, "utf-8")
    engine = MarkupEngine(config.markdown)
    page, problems = load_page(source(tmp_path, "mechanism/alpha.md"), config, engine, TODAY)
    assert page is None
    assert sorted(d.format().split("\n")[0] for d in problems) == [
        "content/mechanism/alpha.md:3:8: error: 'draft' must be true or false, not 'yes'",
        "content/mechanism/alpha.md:7:15: error: link URL with the unsafe scheme 'javascript:' "
        "is not allowed",
    ]


def test_a_page_too_deep_to_convert_does_not_corrupt_the_next_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = config_for(tmp_path)
    deep = PAGE.replace("Body with [[beta]].", "Intro.\n\n" + "- " * 10_000 + "deep")
    (tmp_path / "content/mechanism/deep.md").write_text(deep, "utf-8")
    (tmp_path / "content/mechanism/alpha.md").write_text(PAGE, "utf-8")
    engine = MarkupEngine(config.markdown)  # one engine for both pages, as in a build
    _, problems = load_page(source(tmp_path, "mechanism/deep.md"), config, engine, TODAY)
    assert [d.format() for d in problems] == [  # the line-based check refuses it at once
        "content/mechanism/deep.md:8:1: error: lists or blockquotes are nested about 10000 "
        "levels deep; at most 100 are supported\n"
        "  hint: flatten the nesting (use headings or separate lists)"
    ]
    # Nesting only the converter finds: it runs out of recursion half-way through.
    monkeypatch.setattr(engine._md, "convert", _recursion_error)
    _, problems = load_page(source(tmp_path, "mechanism/alpha.md"), config, engine, TODAY)
    assert [d.message for d in problems] == [
        "Markdown on this line is nested too deeply to convert (4 of the characters "
        "* _ [ ] ! < > `)"
    ]
    page, problems = load_page(source(tmp_path, "mechanism/alpha.md"), config, engine, TODAY)
    assert problems == [] and page is not None
    assert [link.target for link in page.markup.links] == ["beta"]
    assert '<a href="' in page.markup.html


def _recursion_error(text: str) -> str:
    raise RecursionError


@pytest.mark.parametrize("count", [0, 1, 7, 100, 1000, 10_000])
def test_work_is_cut_into_chunks_that_shrink_towards_the_end(count: int) -> None:
    items = list(range(count))
    chunks = shrinking_chunks(items, 2, smallest=4, largest=64)
    assert [item for chunk in chunks for item in chunk] == items  # all of it, in order
    sizes = [len(chunk) for chunk in chunks]
    assert all(size <= 64 for size in sizes)
    assert sizes == sorted(sizes, reverse=True)
    if count >= 1000:
        assert sizes[0] == 64 and sizes[-2] == 4  # large first, a small chunk last
