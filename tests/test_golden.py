"""The golden site: a five-page project whose full HTML output is committed for review.

Any change to templates, rendering or Markdown handling shows up as a diff of
tests/fixtures/golden/expected/. After reviewing an intended change, regenerate it with
`python -m pytest tests/test_golden.py --update-golden`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import REPO, TODAY, snapshot

from kbgen.incremental import Builder
from kbgen.pipeline import BuildOptions

GOLDEN = REPO / "tests" / "fixtures" / "golden"
COMPARED_SUFFIXES = (".html", ".xml", ".txt", ".json")


def _build(tmp_path: Path) -> dict[str, bytes]:
    project = tmp_path / "project"
    shutil.copytree(GOLDEN / "project", project)
    shutil.copytree(REPO / "templates", project / "templates")
    shutil.copytree(REPO / "static", project / "static")
    result = Builder(project / "config.yaml", BuildOptions(today=TODAY)).build()
    assert result.ok, [d.format() for d in result.diagnostics]
    return {rel: data for rel, data in snapshot(project / "site").items()
            if rel.endswith(COMPARED_SUFFIXES) and not rel.startswith(("static/", "pagefind/"))
            and not rel.startswith(".")}


def test_golden_site_output_matches(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    actual = _build(tmp_path)
    expected_dir = GOLDEN / "expected"
    if request.config.getoption("--update-golden"):
        shutil.rmtree(expected_dir, ignore_errors=True)
        for rel, data in actual.items():
            (expected_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            (expected_dir / rel).write_bytes(data)
    expected = snapshot(expected_dir)
    assert sorted(actual) == sorted(expected)
    for rel in sorted(actual):
        assert actual[rel].decode() == expected[rel].decode(), (
            f"{rel} differs from the golden copy; if intended, run pytest --update-golden")
