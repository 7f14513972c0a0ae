"""Property tests: no input, however strange, crashes a stage or the build.

Hypothesis generates front matter and Markdown bodies (arbitrary Unicode, control
characters, Markdown and YAML punctuation, raw bytes). Every stage must return values and
diagnostics instead of raising, and a whole build must end as a site or as diagnostics,
with the previous site untouched when it fails. Example counts are bounded so the suite
stays fast on CI's two cores.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import yaml
from conftest import REPO, TODAY, snapshot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kbgen.config_types import FieldSpec, MarkdownOptions, SectionSpec
from kbgen.diagnostics import Severity
from kbgen.frontmatter import parse_front_matter, split_front_matter
from kbgen.incremental import Builder
from kbgen.links import scan_positions
from kbgen.load import decode_text
from kbgen.markup import MarkupEngine
from kbgen.pipeline import BuildOptions
from kbgen.yamlload import YamlReader

FAST = settings(max_examples=300, deadline=None, database=None)
SLOW = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Any Unicode scalar value except lone surrogates (not encodable), control characters included.
any_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=400)
MARKDOWN_ALPHABET = [
    *"#*_[]()!<>`~-+=|:{}@^&;/\\\"' \n\n\n\t.,0123456789aAbBzZ",
    "[[",
    "]]",
    "[@",
    "```",
    "    ",
    "> ",
    "- ",
    "1. ",
    "{: ",
    "javascript:",
    "<script>",
    "&#106;",
    "[^1]",
    "\x1a",
    "\ufeff",
    "\u202e",
]
markdownish = st.lists(st.sampled_from(MARKDOWN_ALPHABET), max_size=120).map("".join)
bodies = st.one_of(any_text, markdownish)

YAML_ALPHABET = [
    *"abc: -[]{},'\"#&*!|>%@`\n\n  \t?~0123456789.",
    "title: ",
    "summary: ",
    "last_reviewed: ",
    "2026-01-01",
    "tags: ",
    "no",
    "on",
    "012345",
    "!!python/object:os.system ",
    "&a ",
    "*a",
    "---",
]
yamlish = st.lists(st.sampled_from(YAML_ALPHABET), max_size=80).map("".join)
front_matters = st.one_of(any_text, yamlish)

SECTION = SectionSpec(
    "mechanism",
    "Mechanism",
    "",
    1,
    (
        FieldSpec("status", "Status", "enum", ("established", "contested")),
        FieldSpec("dose", "Dose", "number", required=False),
        FieldSpec("approved", "Approved", "boolean", required=False),
    ),
)


@FAST
@given(bodies)
def test_markdown_conversion_never_raises(body: str) -> None:
    for raw_html in ("escape", "sanitize"):
        markup = MarkupEngine(MarkdownOptions(raw_html=raw_html)).convert(body, 5)
        assert isinstance(markup.html, str)
        for line, col, message, hint in markup.problems:
            assert line >= 5 and col >= 1 and message and hint
        for link in markup.links:
            assert link.line >= 5 and link.col >= 1
        if raw_html == "escape":
            assert "<script" not in markup.html.lower()


@FAST
@given(bodies)
def test_position_scan_never_raises_and_stays_in_the_body(body: str) -> None:
    lines = body.split("\n")
    for ref in scan_positions(body, 3):
        assert 3 <= ref.line < 3 + len(lines)
        assert 1 <= ref.col <= len(lines[ref.line - 3]) + 1


@FAST
@given(front_matters)
def test_yaml_reader_returns_nodes_or_diagnostics(text: str) -> None:
    reader = YamlReader("f.md", line_offset=1)
    node = reader.compose(text)
    if node is None:
        assert all(d.severity is Severity.ERROR and d.hint for d in reader.diagnostics)
    else:
        assert reader.diagnostics == []
        line, col = reader.pos(node)
        assert line >= 2 and col >= 1
        seen: set[int] = set()  # no node appears twice: aliases never reach a caller
        stack = [node]
        while stack:
            current = stack.pop()
            assert id(current) not in seen
            seen.add(id(current))
            if isinstance(current, yaml.MappingNode):
                stack += [part for pair in current.value for part in pair]
            elif isinstance(current, yaml.SequenceNode):
                stack += current.value


@FAST
@given(front_matters, bodies)
def test_front_matter_parsing_never_raises(front: str, body: str) -> None:
    text = f"---\n{front}\n---\n{body}"
    decoded, problems = decode_text(text.encode("utf-8", "surrogatepass"), "f.md")
    if decoded is None:
        assert problems and problems[0].hint
        return
    split, problems = split_front_matter(decoded, "f.md")
    if split is None:
        assert problems
        return
    meta, problems = parse_front_matter(split, "f.md", SECTION, TODAY, 365, is_article=True)
    if meta is None:
        assert any(d.is_error for d in problems)
    else:
        assert meta.title and meta.summary and isinstance(meta.last_reviewed, dt.date)
    for diagnostic in problems:
        assert diagnostic.line is not None and diagnostic.line >= 1 and diagnostic.hint


# -- whole builds ---------------------------------------------------------------------------

CONFIG = """\
title: Fuzz
search: false
review_interval_days: 36500
sections:
  - id: mechanism
    title: Mechanism
"""
GOOD_PAGE = (
    "---\ntitle: Good\nsummary: A good page.\nlast_reviewed: 2026-01-01\n---\nSee [[fuzzed]].\n"
)


def _project(tmp_path: Path) -> Path:
    root = tmp_path / "fuzz-project"
    if not root.exists():
        root.mkdir()
        shutil.copytree(REPO / "templates", root / "templates")
        shutil.copytree(REPO / "static", root / "static")
        (root / "config.yaml").write_text(CONFIG, "utf-8")
        (root / "content" / "mechanism").mkdir(parents=True)
        (root / "content" / "mechanism" / "good.md").write_text(GOOD_PAGE, "utf-8")
    return root


def _assert_site_or_diagnostics(root: Path, builder: Builder) -> None:
    site = root / "site"
    before = snapshot(site) if site.exists() else None
    result = builder.build()  # must not raise
    if result.ok:
        assert (site / ".kbgen-site").is_file()
        assert (site / "mechanism" / "good" / "index.html").is_file()
    else:
        assert result.errors > 0
        assert all(d.hint for d in result.diagnostics if d.is_error)
        assert (snapshot(site) if site.exists() else None) == before


@SLOW
@given(front=front_matters, body=bodies)
def test_any_front_matter_and_body_build_to_a_site_or_diagnostics(
    tmp_path: Path, front: str, body: str
) -> None:
    root = _project(tmp_path)
    page = root / "content" / "mechanism" / "fuzzed.md"
    page.write_text(f"---\n{front}\n---\n{body}", "utf-8", errors="surrogatepass")
    _assert_site_or_diagnostics(root, Builder(root / "config.yaml", BuildOptions(today=TODAY)))


@SLOW
@given(body=bodies)
def test_any_body_under_valid_front_matter_builds_or_reports(tmp_path: Path, body: str) -> None:
    root = _project(tmp_path)
    page = root / "content" / "mechanism" / "fuzzed.md"
    front = "title: Fuzzed\nsummary: A fuzzed page.\nlast_reviewed: 2026-01-01"
    page.write_text(f"---\n{front}\n---\n{body}", "utf-8")
    _assert_site_or_diagnostics(root, Builder(root / "config.yaml", BuildOptions(today=TODAY)))


@settings(SLOW, max_examples=25)
@given(data=st.binary(max_size=600))
def test_arbitrary_bytes_as_a_page_build_or_report(tmp_path: Path, data: bytes) -> None:
    root = _project(tmp_path)
    (root / "content" / "mechanism" / "fuzzed.md").write_bytes(data)
    _assert_site_or_diagnostics(root, Builder(root / "config.yaml", BuildOptions(today=TODAY)))
