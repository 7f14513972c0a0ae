"""kbgen/incremental/search_index.py: the bundle written from per-page records must be
byte-identical to one full Pagefind run + canonicalize_bundle over the same folder, after
each kind of edit, and a forged record must only mean "give that page to Pagefind again"."""

from __future__ import annotations

import gzip
import itertools
import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from kbgen import search
from kbgen.incremental import search_batches, search_bundle, search_index
from kbgen.incremental.cache import CacheDir
from kbgen.incremental.search_records import PageRecord
from kbgen.write_manifest import file_digest

pytestmark = pytest.mark.skipif(search.pagefind_binary() is None, reason="no Pagefind binary")


def _page(title: str, body: str, *, section: str = "A", summary: str = "") -> str:
    meta = f'<p data-pagefind-meta="summary">{summary}</p>' if summary else ""
    return (
        f'<!DOCTYPE html><html lang="en"><head><title>{title}</title></head><body>'
        f"<main data-pagefind-body><h1>{title}</h1>{meta}"
        f'<span data-pagefind-filter="section">{section}</span><p>{body}</p></main>'
        "<footer>not indexed</footer></body></html>"
    )


def _site(root: Path) -> Path:
    site = root / "site"
    pages = {
        "index.html": _page("Home", "welcome to the ketamine knowledge base"),
        "a/one/index.html": _page("Esketamine spray", "nasal esketamine résumé dose", summary="s1"),
        "a/two/index.html": _page("Racemic ketamine", "infusion dose naïve café"),
        "b/three/index.html": _page("Bladder", "uropathy cystitis dose", section="B"),
        "b/index.html": _page("Section B", "overview of section b"),
        "tags/index.html": "<html lang='en'><body><main>tag list, no body</main></body></html>",
    }
    for rel, html in pages.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(html, "utf-8")
    return site


def _full_bundle(site: Path, work: Path) -> dict[str, bytes]:
    reference = work / "reference"
    shutil.rmtree(reference, ignore_errors=True)
    shutil.copytree(site, reference, ignore=shutil.ignore_patterns("pagefind"))
    search.index_site(reference)
    return _tree(reference / "pagefind")


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in folder.rglob("*")
        if path.is_file()
    }


def _assert_same_as_full(site: Path, work: Path) -> None:
    assert _tree(site / "pagefind") == _full_bundle(site, work)


def test_every_edit_kind_gives_the_full_index_bytes(tmp_path: Path) -> None:
    site = _site(tmp_path)
    cache = CacheDir(tmp_path / "cache")
    assert search_index.index_site(site, cache).mode == "batches"
    _assert_same_as_full(site, tmp_path)
    one = site / "a/one/index.html"
    edits = {
        "body": lambda: one.write_text(_page("Esketamine spray", "nasal zymurgy", summary="s1")),
        "title": lambda: one.write_text(_page("Spravato", "nasal zymurgy", summary="s1")),
        "filter": lambda: one.write_text(_page("Spravato", "nasal", section="B", summary="s1")),
        "new page": lambda: (
            (site / "b/four").mkdir()
            or (site / "b/four/index.html").write_text(
                _page("New", "quokka dose", summary="new meta")
            )
        ),
        "deleted page": lambda: shutil.rmtree(site / "b/three"),
        "a page without an indexed body changes": lambda: (site / "tags/index.html").write_text(
            "<html lang='en'><body><main>tag list, changed, no body</main></body></html>"
        ),
        "page becomes a draft (no indexed body)": lambda: (site / "a/two/index.html").write_text(
            "<html lang='en'><body><main>draft</main></body></html>"
        ),
    }
    # body and title edits update the last bundle's state; the others write every record
    modes = dict.fromkeys(edits, "incremental") | {
        "body": "edit",
        "title": "edit",
        "a page without an indexed body changes": "edit",
    }
    for kind, edit in edits.items():
        edit()
        run = search_index.index_site(site, cache)
        assert run.mode == modes[kind], (kind, run)
        assert run.reindexed <= 1, (kind, run)
        assert _tree(site / "pagefind") == _full_bundle(site, tmp_path), kind


def test_a_forged_record_is_ignored_and_the_page_indexed_again(tmp_path: Path) -> None:
    site = _site(tmp_path)
    cache = CacheDir(tmp_path / "cache")
    search_index.index_site(site, cache)
    (cache.base / "search" / "state.bin").unlink()  # else the unchanged site needs no record
    records = sorted((cache.base / "search").glob("*.rec"))
    assert records
    victim = records[0]
    data = bytearray(victim.read_bytes())
    data[-1] ^= 0xFF  # flipped, as a contributed cache could carry it
    victim.write_bytes(bytes(data))
    records[1].write_bytes(records[1].read_bytes()[:40])  # truncated
    os.unlink(records[2])
    os.symlink("/dev/zero", records[2])  # never read
    run = search_index.index_site(site, cache)
    assert run.mode == "incremental" and run.reindexed == 3
    _assert_same_as_full(site, tmp_path)


def test_the_comparison_catches_a_skipped_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mutation check: a writer that keeps one changed page's old postings must fail."""
    site = _site(tmp_path)
    cache = CacheDir(tmp_path / "cache")
    search_index.index_site(site, cache)
    one = site / "a/one/index.html"
    old = search_index.RecordStore(cache).load("a/one/index.html", file_digest(one))
    assert old is not None
    one.write_text(_page("Esketamine spray", "nasal zymurgy", summary="s1"))
    real = search_index.write_bundle

    def stale(records, bundle, store=None):  # type: ignore[no-untyped-def]
        return real(
            [old if r is not None and r.rel == old.rel else r for r in records], bundle, store
        )

    monkeypatch.setattr(search_index, "write_bundle", stale)
    (cache.base / "search" / "state.bin").unlink()  # the records path, not the state's
    assert search_index.index_site(site, cache).mode == "incremental"
    assert _tree(site / "pagefind") != _full_bundle(site, tmp_path)


def test_the_comparison_catches_an_edit_that_keeps_old_postings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mutation check for the state's path: updating the words with the page's old record
    (its new fragment and word count still written) must fail the comparison."""
    site = _site(tmp_path)
    cache = CacheDir(tmp_path / "cache")
    search_index.index_site(site, cache)
    real = search_index.apply_edit

    def stale(state, edits):  # type: ignore[no-untyped-def]
        kept = {rel: (old, replace(new, words=old.words)) for rel, (old, new) in edits.items()}
        return real(state, kept)

    monkeypatch.setattr(search_index, "apply_edit", stale)
    (site / "a/one/index.html").write_text(_page("Esketamine spray", "nasal zymurgy", summary="s1"))
    assert search_index.index_site(site, cache).mode == "edit"
    assert _tree(site / "pagefind") != _full_bundle(site, tmp_path)


def _edit_body(site: Path, rel: str, body: str) -> None:
    title = {"a/one/index.html": "Esketamine spray", "a/two/index.html": "Racemic ketamine"}
    (site / rel).write_text(_page(title[rel], body, summary="s1" if "one" in rel else ""))


def test_edits_of_words_with_variants_and_of_two_pages_at_once(tmp_path: Path) -> None:
    site = _site(tmp_path)
    cache = CacheDir(tmp_path / "cache")
    search_index.index_site(site, cache)
    one, two = "a/one/index.html", "a/two/index.html"
    steps = [
        {one: "nasal café résumé dose"},  # gains a variant another page has
        {two: "infusion dose naive cafe"},  # loses its variants
        {one: "cafe café cafés", two: "naïve café dose"},
        {one: "dose", two: "dose dose dose infusion"},
        {one: "cafe café cafés", two: "cafés café"},  # two variants, both on both pages
        # both variants' first page becomes the other page: their order is in that page's
        # record, which the state does not hold (falls back, if one comes first in the walk)
        {one: "dose"},
    ]
    for step in steps:
        for rel, body in step.items():
            _edit_body(site, rel, body)
        run = search_index.index_site(site, cache)
        assert run.reindexed == len(step), (step, run)
        assert run.mode == "edit" or step == steps[-1], (step, run)
        assert _tree(site / "pagefind") == _full_bundle(site, tmp_path), step


@pytest.mark.parametrize(
    "damage", ["flipped", "truncated", "symlink", "fragments gone", "filter gone"]
)
def test_a_damaged_state_or_last_bundle_falls_back_to_the_records(
    tmp_path: Path, damage: str
) -> None:
    site = _site(tmp_path)
    cache = CacheDir(tmp_path / "cache")
    search_index.index_site(site, cache)
    state = cache.base / "search" / "state.bin"
    if damage == "flipped":
        data = bytearray(state.read_bytes())
        data[len(data) // 2] ^= 0x01
        state.write_bytes(bytes(data))
    elif damage == "truncated":
        state.write_bytes(state.read_bytes()[:-10])
    elif damage == "symlink":
        state.unlink()
        os.symlink("/dev/zero", state)
    else:  # the last bundle (our own output) lacks a file the state says it has
        folder = site / "pagefind" / damage.split()[0].rstrip("s")
        for path in folder.iterdir():
            path.unlink()
    _edit_body(site, "a/one/index.html", "nasal zymurgy")
    run = search_index.index_site(site, cache)
    assert run.mode == "incremental" and run.reindexed == 1, run
    _assert_same_as_full(site, tmp_path)
    _edit_body(site, "a/one/index.html", "nasal zymurgy quokka")  # and the state is back
    assert search_index.index_site(site, cache).mode == "edit"
    _assert_same_as_full(site, tmp_path)


@pytest.mark.parametrize("summaries", ["on every page", "on one page"])
def test_the_first_index_in_batches_is_the_full_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, summaries: str
) -> None:
    """Batches of two pages: postings appended across batches, a page without a body, the
    filter values; a batch whose meta key list differs (no page with a summary in it) is
    not modelled, and one full Pagefind run is made instead."""
    monkeypatch.setattr(search_batches, "BATCH_PAGES", 2)
    site = _site(tmp_path)
    for rel in ("index.html", "a/two/index.html", "b/three/index.html", "b/index.html"):
        if summaries == "on every page":
            html = (site / rel).read_text("utf-8")
            meta = f'<p data-pagefind-meta="summary">about {rel}</p>'
            (site / rel).write_text(html.replace("</h1>", "</h1>" + meta), "utf-8")
    cache = CacheDir(tmp_path / "cache")
    run = search_index.index_site(site, cache)
    assert run.mode == ("batches" if summaries == "on every page" else "full"), run
    _assert_same_as_full(site, tmp_path)
    three = site / "b/three/index.html"
    three.write_text(three.read_text("utf-8").replace("uropathy", "quokka"), "utf-8")
    assert search_index.index_site(site, cache).mode == "edit"  # the state was kept
    _assert_same_as_full(site, tmp_path)


def test_colliding_fragment_names_are_given_as_one_full_run_gives_them() -> None:
    """Two fragments whose 7-digit names collide (as two of 10,000 benchmark pages did): the
    page first in walk order keeps 7 digits, the later one gets 8, whichever batch or
    scratch run named them."""
    seen: dict[str, bytes] = {}
    for n in itertools.count():
        payload = b"fragment %d" % n
        name = search_bundle._sha1_name("en", payload)[:10]
        if name in seen:
            first, second = seen[name], payload
            break
        seen[name] = payload

    def record(rel: str, payload: bytes) -> PageRecord:
        packed = gzip.compress(search.SIGNATURE + payload)
        short = search_bundle._sha1_name("en", payload)[:10]
        return PageRecord(rel, "digest", True, fragment=short, fragment_gz=packed)

    namer = search_bundle.FragmentNamer("en")
    kept, longer = namer.named(record("a.html", first)), namer.named(record("b.html", second))
    assert len(kept.fragment) == 10 and len(longer.fragment) == 11
    assert longer.fragment == search_bundle._sha1_name("en", second)[:11]
    assert kept.fragment == longer.fragment[:10]
