"""The search stage (kbgen/search.py): Pagefind over the written site, filters from the
templates, navigation kept out of the index, and a byte-identical bundle for the same input."""

from __future__ import annotations

import gzip
import json
import os
import random
from pathlib import Path

import pytest
from conftest import REPO, TODAY, article, run_build, run_cli, snapshot
from hypothesis import given, settings
from hypothesis import strategies as st

from kbgen import search
from kbgen.incremental import Builder
from kbgen.pipeline import BuildOptions
from kbgen.search import (
    CborSimple,
    SearchIndexError,
    canonicalize_bundle,
    cbor_decode,
    cbor_encode,
    index_site,
)

CONFIG = """\
title: Quokkapedia
description: A tiny site for search tests.
sections:
  - id: mechanism
    title: Mechanism
    fields:
      status: {label: Status, type: enum, values: [established, contested, preclinical]}
  - id: indications
    title: Indications
    fields:
      status: {label: Status, type: enum, values: [approved, off-label, investigational]}
      evidence: {label: Evidence, type: enum, values: [strong, moderate, low, very low]}
"""
# enough distinct filter values that Pagefind's hash-map order differs between runs
TAGS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
        "juliet", "kilo", "lima", "mike", "november"]


def _files(tags: list[str] = TAGS) -> dict[str, str]:
    files = {}
    for n, tag in enumerate(tags):
        status = ["established", "contested", "preclinical"][n % 3]
        files[f"content/mechanism/m-{tag}.md"] = article(
            f"Mechanism {tag}", f"The zeppelin {tag} hypothesis, see [[i-{tag}]].",
            tags=f"[{tag}, shared]", extra=f"status: {status}")
        files[f"content/indications/i-{tag}.md"] = article(
            f"Indication {tag}", f"Zeppelin treatment {tag}.", tags=f"[{tag}]",
            extra=f"status: {['approved', 'off-label', 'investigational'][n % 3]}\n"
                  f"evidence: {['strong', 'moderate', 'low', 'very low'][n % 4]}")
    return files


def _read(path: Path) -> object:
    raw = gzip.decompress(path.read_bytes())
    assert raw.startswith(b"pagefind_dcd")
    value, end = cbor_decode(raw[len(b"pagefind_dcd"):])
    assert end == len(raw) - len(b"pagefind_dcd")
    return value


def _strings(value: object) -> set[str]:
    if isinstance(value, str):
        return {value}
    if isinstance(value, list):
        return set().union(*(_strings(v) for v in value)) if value else set()
    if isinstance(value, dict):
        return _strings(list(value.keys())) | _strings(list(value.values()))
    return set()


def _meta(bundle: Path) -> list[object]:
    entry = json.loads((bundle / "pagefind-entry.json").read_text("utf-8"))
    meta = _read(bundle / f"pagefind.{entry['languages']['en']['hash']}.pf_meta")
    assert isinstance(meta, list)
    return meta


# -- through the real build ----------------------------------------------------------------


def test_two_builds_give_byte_identical_trees(make_site) -> None:
    root = make_site(_files(), config=CONFIG)
    first = run_build(root, output=root / "out-a")
    second = run_build(root, output=root / "out-b")
    assert first.ok and second.ok, first.diagnostics + second.diagnostics
    tree_a, tree_b = snapshot(root / "out-a"), snapshot(root / "out-b")
    filters = [rel for rel in tree_a if rel.startswith("pagefind/filter/")]
    assert len(filters) == 4  # section, tag, status, evidence: the test is not vacuous
    assert tree_a.keys() == tree_b.keys()
    assert [rel for rel in tree_a if tree_a[rel] != tree_b[rel]] == []


def test_repository_site_builds_byte_identically(built_site: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    result = Builder(REPO / "config.yaml", BuildOptions(output=again, today=TODAY)).build()
    assert result.ok
    first, second = snapshot(built_site), snapshot(again)
    assert any(rel.startswith("pagefind/filter/") for rel in first)
    assert first.keys() == second.keys()
    assert [rel for rel in first if first[rel] != second[rel]] == []


def test_filters_pages_and_what_is_indexed(make_site) -> None:
    root = make_site(_files(), config=CONFIG)
    assert run_build(root).ok
    bundle = root / "site" / "pagefind"
    entry = json.loads((bundle / "pagefind-entry.json").read_text("utf-8"))
    # articles, section intros' headers and the glossary/bibliography bodies; not tag pages
    assert entry["languages"]["en"]["page_count"] >= 2 * len(TAGS)
    meta = _meta(bundle)
    names = {name for name, _ in meta[3]}  # type: ignore[misc]
    assert names == {"section", "tag", "status", "evidence"}
    values = {}
    for name, file_hash in meta[3]:  # type: ignore[misc]
        data = _read(bundle / "filter" / f"{file_hash}.pf_filter")
        assert isinstance(data, list) and data[0] == name
        values[name] = [v for v, _ in data[1]]
        assert values[name] == sorted(values[name])  # canonical order
    assert {"Mechanism", "Indications"} <= set(values["section"])
    assert set(values["evidence"]) == {"strong", "moderate", "low", "very low"}
    assert {"established", "approved", "off-label"} <= set(values["status"])
    assert set(TAGS) <= set(values["tag"])
    words = set().union(*(_strings(_read(p)) for p in (bundle / "index").glob("*.pf_index")))
    assert "zeppelin" in words
    # the skip link, navigation and footer ("Atom feed", "No tracking") are outside
    # data-pagefind-body
    assert not {"skip", "atom", "track", "tracking"} & words


def _fragments(bundle: Path) -> dict[str, str]:
    """url -> the text Pagefind indexed (and shows snippets from)."""
    found = {}
    for path in (bundle / "fragment").glob("*.pf_fragment"):
        fragment = json.loads(gzip.decompress(path.read_bytes())[len(b"pagefind_dcd"):])
        found[fragment["url"]] = fragment["content"]
    return found


def test_snippets_have_no_space_where_citation_markers_were(make_site) -> None:
    refs = "a: {type: other, title: A, year: 2020}\nb: {type: other, title: B, year: 2021}\n"
    body = ("Tolerance and dependence [@a; @b]. The risk [@a], mostly [@b]; see\n"
            "[[m-other]] [@a]: done.\n")
    root = make_site({
        "content/mechanism/m-cited.md": article("Cited", body, extra="status: established"),
        "content/mechanism/m-other.md": article("Other", "Plain.", extra="status: contested"),
        "content/references.yaml": refs}, config=CONFIG)
    result = run_build(root)
    assert result.ok, result.diagnostics
    text = _fragments(root / "site" / "pagefind")["/mechanism/m-cited/"]
    assert "Tolerance and dependence. The risk, mostly; see Other: done." in text, text


def test_build_without_search_writes_no_bundle(make_site) -> None:
    root = make_site(_files(), config=CONFIG)
    assert run_build(root, search=False).ok
    assert not (root / "site" / "pagefind").exists()
    search_page = (root / "site" / "search" / "index.html").read_text("utf-8")
    assert 'data-bundle="../pagefind/"' in search_page  # the page still explains itself


def test_missing_pagefind_fails_the_build_and_keeps_the_old_site(make_site,
                                                                 monkeypatch) -> None:
    root = make_site(_files(), config=CONFIG)
    assert run_build(root).ok
    before = snapshot(root / "site")
    (root / "content" / "mechanism" / "m-alpha.md").write_text(
        article("Changed", extra="status: established"), "utf-8")
    monkeypatch.setenv("PAGEFIND_BINARY_PATH", str(root / "no-such-pagefind"))
    process = run_cli(root, "build")
    assert process.returncode == 1
    assert "Pagefind could not be started" in process.stderr
    assert "Traceback" not in process.stderr
    assert snapshot(root / "site") == before


# -- index_site on a live folder (what serve does after a rebuild) --------------------------


def _page(title: str, tag: str) -> str:
    return (f'<!DOCTYPE html><html lang="en"><head><title>{title}</title></head><body>'
            f'<main data-pagefind-body><h1>{title}</h1><p>Words about {title}.</p>'
            f'<span hidden data-pagefind-filter="tag">{tag}</span></main></body></html>')


def test_index_site_replaces_the_bundle_whole(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "a.html").write_text(_page("Aardvark", "first"), "utf-8")
    index_site(site)
    old = set(snapshot(site / "pagefind"))
    (site / "a.html").write_text(_page("Badger", "second"), "utf-8")
    index_site(site)
    new = snapshot(site / "pagefind")
    assert set(new) != old
    stale = [rel for rel in old - set(new) if rel.startswith(("filter/", "index/", "fragment/"))]
    assert stale  # files of the first index existed...
    assert not [rel for rel in stale if (site / "pagefind" / rel).exists()]  # ...and are gone
    assert sorted(p.name for p in site.iterdir()) == ["a.html", "pagefind"]  # no debris
    words = set().union(*(_strings(_read(site / "pagefind" / rel))
                          for rel in new if rel.startswith("index/")))
    assert "badger" in words and "aardvark" not in words


def test_index_site_without_binary_says_how_to_fix(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(search, "pagefind_binary", lambda: None)
    with pytest.raises(SearchIndexError, match="pip install 'pagefind\\[bin\\]'"):
        index_site(tmp_path)


def test_pagefind_failure_is_reported(tmp_path: Path, monkeypatch) -> None:
    fake = tmp_path / "pagefind"
    fake.write_text("#!/bin/sh\necho 'broken index' >&2\nexit 3\n", "utf-8")
    fake.chmod(0o755)
    monkeypatch.setenv("PAGEFIND_BINARY_PATH", str(fake))
    site = tmp_path / "site"
    site.mkdir()
    with pytest.raises(SearchIndexError, match="Pagefind failed \\(3\\): broken index"):
        index_site(site)
    assert list(site.iterdir()) == []


# -- canonical bundles -------------------------------------------------------------------


def _write(path: Path, value: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(b"pagefind_dcd" + cbor_encode(value)))


def _bundle(folder: Path, seed: int, version: str = "1.5.2") -> Path:
    """A minimal Pagefind 1.5 bundle whose filter values are in a seeded random order."""
    shuffle = random.Random(seed).shuffle
    values = [[f"value-{n:02}", [n, n + 1]] for n in range(12)]
    shuffle(values)
    filters = [["tag", f"en_tag{seed}"], ["section", f"en_sec{seed}"]]
    shuffle(filters)
    _write(folder / "filter" / f"en_tag{seed}.pf_filter", ["tag", values])
    _write(folder / "filter" / f"en_sec{seed}.pf_filter", ["section", [["B", [1]], ["A", [0]]]])
    meta = [version, [["en_page", 12]], [["a", "z", "en_chunk"]], filters, [], ["title"]]
    _write(folder / f"pagefind.en_meta{seed}.pf_meta", meta)
    entry = {"version": version, "languages": {"en": {"hash": f"en_meta{seed}", "wasm": "en",
                                                       "page_count": 1}}}
    (folder / "pagefind-entry.json").write_text(json.dumps(entry), "utf-8")
    return folder


def test_canonical_bundle_does_not_depend_on_pagefind_order(tmp_path: Path) -> None:
    one, two = _bundle(tmp_path / "one", 1), _bundle(tmp_path / "two", 2)
    assert snapshot(one) != snapshot(two)
    assert canonicalize_bundle(one) and canonicalize_bundle(two)
    assert snapshot(one) == snapshot(two)
    meta = _meta(one)
    assert [name for name, _ in meta[3]] == ["section", "tag"]  # type: ignore[misc]
    tag_file = one / "filter" / f"{meta[3][1][1]}.pf_filter"  # type: ignore[index]
    data = _read(tag_file)
    assert [v for v, _ in data[1]] == [f"value-{n:02}" for n in range(12)]  # type: ignore[index]
    assert len(list((one / "filter").iterdir())) == 2  # old names removed
    assert len(list(one.glob("*.pf_meta"))) == 1
    assert meta[0] == "1.5.2" and meta[1] == [["en_page", 12]]  # the rest kept as it was


def test_other_pagefind_versions_are_left_as_written(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path / "b", 3, version="2.0.0")
    before = snapshot(bundle)
    assert canonicalize_bundle(bundle) is False
    assert snapshot(bundle) == before


def test_unexpected_layout_is_an_error_not_a_silent_change(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path / "b", 4)
    (bundle / "filter" / "en_tag4.pf_filter").write_bytes(gzip.compress(b"pagefind_dcd\xff"))
    with pytest.raises(SearchIndexError, match=r"en_tag4\.pf_filter"):
        canonicalize_bundle(bundle)


def test_cbor_examples() -> None:
    assert cbor_encode(0) == b"\x00"
    assert cbor_encode(23) == b"\x17"
    assert cbor_encode(24) == b"\x18\x18"
    assert cbor_encode(1000) == b"\x19\x03\xe8"
    assert cbor_encode(-1) == b"\x20"
    assert cbor_encode("a") == b"\x61a"
    assert cbor_encode([1, [2]]) == b"\x82\x01\x81\x02"
    assert cbor_decode(b"\xf5") == (CborSimple(b"\xf5"), 1)  # true kept as its bytes
    with pytest.raises(ValueError):
        cbor_decode(b"\x9f\x01\xff")  # indefinite length


_CBOR = st.recursive(
    st.integers(min_value=-(2**63), max_value=2**64 - 1) | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=4),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(_CBOR)
def test_cbor_round_trips(value: object) -> None:
    encoded = cbor_encode(value)
    assert cbor_decode(encoded) == (value, len(encoded))


def test_no_staging_debris_left_after_a_build(make_site) -> None:
    root = make_site(_files(), config=CONFIG)
    assert run_build(root).ok
    leftovers = [p.name for p in (root / "site").iterdir() if p.name.startswith(".pagefind")]
    assert leftovers == []
    assert os.listdir(root / "site" / "pagefind")


def test_a_full_disk_is_named_when_pagefind_cannot_write(tmp_path: Path, tmpfs) -> None:
    disk = tmpfs(tmp_path / "disk", 256)
    site = disk / "site"
    site.mkdir()
    for n in range(3):
        (site / f"p{n}.html").write_text(_page(f"Page {n}", "alpha"), "utf-8")
    (disk / "filler").write_bytes(b"\0" * (os.statvfs(disk).f_bavail * 4096 - 4096))
    with pytest.raises(search.SearchIndexError) as caught:
        search.index_site(site)
    assert "Pagefind could not write the search index" in str(caught.value)
    assert f"the disk holding '{site}' is full" in str(caught.value)
    assert "pagefind-entry.json" not in str(caught.value)


# -- the index after edits is the index a full build gives ------------------------------------

#: query words: every tag and title word, the edited and the deleted page's own words
QUERY_WORDS = [*TAGS, "zeppelin", "hypothesis", "treatment", "mechanism", "indication",
               "shared", "quasar", "walrus", "nebula", "glossary", "bibliography"]


def _word_pages(bundle: Path) -> dict[str, set[int]]:
    """stemmed word -> the page numbers it is indexed for, read from every index chunk."""
    found: dict[str, set[int]] = {}
    for path in (bundle / "index").glob("*.pf_index"):
        chunk = _read(path)
        assert isinstance(chunk, list) and isinstance(chunk[0], list)
        for word, pages, *_ in chunk[0]:
            number = 0
            for page in pages:  # page numbers are stored as differences
                number += page[0]
                found.setdefault(word, set()).add(number)
    return found


def _answers(bundle: Path) -> dict[str, set[str]]:
    """query word -> URLs of the pages indexed under a stem of it or a word it begins
    (Pagefind stems words and matches the last query word as a prefix)."""
    meta = _meta(bundle)
    urls = {}
    for number, (fragment_hash, _) in enumerate(meta[1]):  # type: ignore[misc,arg-type]
        fragment = bundle / "fragment" / f"{fragment_hash}.pf_fragment"
        urls[number] = json.loads(gzip.decompress(fragment.read_bytes())[12:])["url"]
    words = _word_pages(bundle)
    return {
        q: {urls[n] for w, pages in words.items() if q.startswith(w) or w.startswith(q)
            for n in pages}
        for q in QUERY_WORDS
    }


def test_index_after_each_edit_equals_a_full_index(make_site, tmp_path: Path) -> None:
    root = make_site(_files(TAGS[:5]), config=CONFIG)
    serving = Builder(root / "config.yaml", BuildOptions(today=TODAY))  # serve keeps one
    assert serving.build().ok
    steps = [
        {  # a body edit, and a title edit that the linking page's text follows
            "content/mechanism/m-alpha.md": article(
                "Mechanism alpha", "The quasar hypothesis.", tags="[alpha]",
                extra="status: contested"),
            "content/indications/i-bravo.md": article(
                "Indication walrus", "Zeppelin treatment bravo.", tags="[bravo]",
                extra="status: approved\nevidence: low"),
        },
        {  # a new page and a deleted one
            "content/mechanism/m-nebula.md": article(
                "Mechanism nebula", "A nebula page.", tags="[nebula]",
                extra="status: preclinical"),
            "content/mechanism/m-charlie.md": None,
        },
    ]
    for n, step in enumerate(steps):
        for rel, text in step.items():
            if text is None:
                (root / rel).unlink()
            else:
                (root / rel).write_text(text, "utf-8")
        assert serving.build().ok
        served = root / "site" / "pagefind"
        built = run_build(root, output=tmp_path / f"built-{n}")  # a fresh `kbgen build`
        full = run_build(root, output=tmp_path / f"full-{n}", cache=False)
        assert built.ok and full.ok
        expected = _answers(tmp_path / f"full-{n}" / "pagefind")
        answers = _answers(served)
        assert answers == expected, n
        assert _answers(tmp_path / f"built-{n}" / "pagefind") == expected, n
        # and the bundles are the same bytes, so every query, filter and order agree
        assert snapshot(served) == snapshot(tmp_path / f"full-{n}" / "pagefind"), n
        if n == 0:
            assert answers["quasar"] == {"/mechanism/m-alpha/"}
            assert "/mechanism/m-alpha/" not in answers["zeppelin"]  # the old body is gone
            assert answers["walrus"] == {"/indications/i-bravo/", "/mechanism/m-bravo/"}
    assert answers["nebula"] == {"/mechanism/m-nebula/"}
    assert "/mechanism/m-charlie/" not in set().union(*answers.values())
    assert "/mechanism/m-delta/" in answers["zeppelin"]  # the test is not vacuous
