"""Issue #17's equivalence check, in a real browser: after each kind of edit, the index that
the warm builder keeps up to date (the incremental indexer) gives the same answers as a full
index from the reference build `pipeline.build_site()`, to 50 questions asked through the real
pagefind.js in Chromium — same result sets and the same top-10 order.

The comparison is shown to be able to fail: the previous step's (stale) bundle, asked the same
questions, answers differently after every step (an edit that is not indexed, a deleted page
that still appears).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from conftest import TODAY, article
from playwright.sync_api import Page
from test_search import CONFIG, TAGS, _files

from browser.pagefind_queries import Answer, ask, choose_queries, differences
from kbgen.incremental import Builder
from kbgen.pipeline import BuildOptions, build_site

STEPS: list[tuple[str, dict[str, str | None], tuple[str, ...]]] = [
    ("body edit", {"content/mechanism/m-alpha.md": article(
        "Mechanism alpha", "The quasar hypothesis of the zeppelin.", tags="[alpha, shared]",
        extra="status: established")}, ("quasar",)),
    ("title edit", {"content/indications/i-bravo.md": article(
        "Indication walrus", "Zeppelin treatment bravo.", tags="[bravo]",
        extra="status: off-label\nevidence: moderate")}, ("walrus",)),
    ("filter change", {"content/indications/i-delta.md": article(
        "Indication delta", "Zeppelin treatment delta.", tags="[delta]",
        extra="status: approved\nevidence: strong")}, ("delta",)),
    ("new page", {"content/mechanism/m-nebula.md": article(
        "Mechanism nebula", "A nebula page about the zeppelin.", tags="[nebula]",
        extra="status: preclinical")}, ("nebula",)),
    ("deleted page", {"content/mechanism/m-charlie.md": None}, ("charlie",)),
]


def test_incremental_index_answers_like_a_full_index(
    make_site: Callable[..., Path], tmp_path: Path, page: Page,
    static_server: Callable[[Path], str],
) -> None:
    root = make_site(_files(TAGS[:8]), config=CONFIG)
    warm = Builder(root / "config.yaml", BuildOptions(today=TODAY))
    assert warm.build().ok
    for n, (kind, edits, words) in enumerate(STEPS):
        stale = tmp_path / f"stale-{n}"
        shutil.copytree(root / "site", stale)
        for rel, text in edits.items():
            if text is None:
                (root / rel).unlink()
            else:
                (root / rel).write_text(text, "utf-8")
        result = warm.build()
        assert result.ok and result.mode == "warm", kind
        full = tmp_path / f"full-{n}"
        assert build_site(root / "config.yaml", BuildOptions(output=full, today=TODAY)).ok

        full_url, warm_url, stale_url = (static_server(f) for f in (full, root / "site", stale))
        queries = choose_queries(page, full_url, must_include=words)
        assert len(queries) >= 50, kind
        expected = ask(page, full_url, queries)
        assert differences(queries, expected, ask(page, warm_url, queries)) == [], kind
        # the questions can tell an index that missed the edit from one that did not
        assert differences(queries, expected, ask(page, stale_url, queries)), kind
        _check_the_edit(kind, dict(zip([q.label for q in queries], expected, strict=True)))


def _check_the_edit(kind: str, answers: dict[str, Answer]) -> None:
    """The reference answers themselves say what the edit did (the test is not vacuous)."""
    if kind == "body edit":
        assert answers["word quasar"].urls == {"/mechanism/m-alpha/"}
    if kind == "title edit":
        assert "/indications/i-bravo/" in answers["word walrus"].urls
    if kind == "new page":
        assert answers["word nebula"].urls == {"/mechanism/m-nebula/"}
    if kind == "deleted page":
        assert "/mechanism/m-charlie/" not in set().union(*(a.urls for a in answers.values()))
