"""The rebuild policy (kbgen/incremental/policy.py): the table the docs show is the code's, the
incremental resolve is never asked for more than it can do, and each kind of edit is detected
as the change the table names."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

from conftest import REPO, TODAY, article
from test_incremental import ROUTE, build, edit, small_site, write

from kbgen.config import load_config
from kbgen.incremental.cache import CacheDir
from kbgen.incremental.inputs import scan_inputs
from kbgen.incremental.markup_keys import generator_id
from kbgen.incremental.plan import changes_since
from kbgen.incremental.policy import EFFECT_WORDS, POLICY, Change, Effect, policy_table
from kbgen.incremental.resolving import UPDATABLE
from kbgen.incremental.state import previous_state
from kbgen.write_manifest import marker_digest


def test_the_docs_show_the_policy_table_of_the_code() -> None:
    page = (REPO / "docs/incremental-builds.md").read_text("utf-8")
    assert policy_table() in page, "paste policy_table() into docs/incremental-builds.md"


def test_every_change_has_a_row_and_every_effect_a_name() -> None:
    assert set(POLICY) == set(Change)
    single = [flag for flag in Effect if flag is not Effect.NONE]
    assert set(EFFECT_WORDS) == set(single)


def test_the_table_asks_the_incremental_resolve_only_what_it_can_do() -> None:
    for change, effect in POLICY.items():
        resolves = [Effect.RESOLVE_CHANGED, Effect.RELINK, Effect.RESOLVE_ALL]
        assert sum(flag in effect for flag in resolves) <= 1, change
        if Effect.RESOLVE_CHANGED in effect or Effect.RELINK in effect:
            assert change in UPDATABLE, change
        if Effect.FULL_REBUILD in effect:
            assert effect == Effect.FULL_REBUILD, change  # nothing else to say then


def detected(root: Path, today: dt.date = TODAY) -> set[Change]:
    """What a build of `root` now would find changed since the last one (from the state
    that build saved in the cache folder, as a new `kbgen build` process sees it)."""
    config, _ = load_config(root / "config.yaml")
    assert config is not None
    previous, why_none = previous_state(
        None, config, CacheDir(config.cache_dir), generator_id(), drafts=False
    )
    inputs, _ = scan_inputs(config, today, None, False, None, None)
    marker = marker_digest(config.output_dir)
    return set(changes_since(previous, why_none, inputs, use_search=False, write=True,
                             output_marker=marker).kinds)


def test_each_kind_of_edit_is_detected_as_the_change_the_table_names(make_site) -> None:  # type: ignore[no-untyped-def]
    root = make_site(small_site())
    assert detected(root) == {Change.NO_STATE}
    assert build(root).ok
    edits = [
        (lambda: None, set()),
        (lambda: edit(root, "content/mechanism/beta.md", "Beta links", "Beta now links"),
         {Change.PAGE_BODY}),  # what the edit changed for others is the resolve's to find
        (lambda: write(root, "content/routes/im.md", article("IM", "See [[oral]].", extra=ROUTE)),
         {Change.PAGE_ADDED}),
        (lambda: (root / "content/routes/im.md").unlink(), {Change.PAGE_DELETED}),
        (lambda: edit(root, "content/references.yaml", '"A review"', '"Another review"'),
         {Change.REFERENCES}),
        (lambda: edit(root, "content/glossary.yaml", "Feeling detached", "Detached"),
         {Change.GLOSSARY}),
        (lambda: edit(root, "templates/tag.html", "</h1>", "</h1><!-- x -->"), {Change.TEMPLATE}),
        (lambda: write(root, "static/extra.txt", "x"), {Change.STATIC}),
        (lambda: (root / "site/tags/index.html").unlink(), {Change.OUTPUT_MISSING}),
        (lambda: shutil.rmtree(root / "site"), {Change.OUTPUT_REPLACED}),
    ]
    for number, (change, expected) in enumerate(edits):
        change()
        assert detected(root) == expected, number
        assert build(root).ok, number
    assert detected(root, TODAY + dt.timedelta(days=1)) == {Change.DATE}
    edit(root, "config.yaml", "A tiny site for tests.", "Another tiny site.")
    assert detected(root) == {Change.CONFIG}
