"""Dependency recording, fingerprints and the rebuild plan, as units."""

from __future__ import annotations

import datetime as dt
import pickle
import random
from collections.abc import Callable

from kbgen.incremental.deps import DepGraph, NodeRecord
from kbgen.incremental.fingerprints import MISSING, DepKey, Fingerprinter, canonical, fingerprint
from kbgen.incremental.recording import (
    PageProxy,
    Recorder,
    RecordingMapping,
    recording_index,
    template_keys,
)
from kbgen.model import FrontMatter, LinkRef, Markup, Page
from kbgen.site_index import SiteIndex


def page(
    slug: str, title: str = "T", html: str = "<p>x</p>", links: tuple[LinkRef, ...] = ()
) -> Page:
    return Page(
        rel=f"mechanism/{slug}.md",
        source=f"content/mechanism/{slug}.md",
        kind="article",
        section="mechanism",
        slug=slug,
        meta=FrontMatter(title=title, summary="S", last_reviewed=dt.date(2026, 1, 1), tags=("a",)),
        markup=Markup(html, (), frozenset({"h"}), links, ()),
        body_line=5,
        digest=slug,
    )


def index(*pages: Page, backlinks: dict[str, tuple[object, ...]] | None = None) -> SiteIndex:
    return SiteIndex(
        pages={p.slug: p for p in pages},
        links={},
        backlinks=backlinks or {},  # type: ignore[arg-type]
        outbound={},
        pages_by_tag={"a": tuple(p.slug for p in pages)},
        articles_by_section={"mechanism": tuple(p.slug for p in pages)},
        neighbors={},
        section_sizes={"mechanism": len(pages)},
        related={},
        references={},
        citing_pages={},
        glossary=(),
    )


# -- recording -----------------------------------------------------------------------------------


def test_mapping_records_lookups_membership_and_iteration() -> None:
    recorder = Recorder()
    mapping = RecordingMapping("tags", {"a": 1, "b": 2}, recorder)
    assert mapping["a"] == 1
    assert mapping.get("zzz") is None
    assert "b" in mapping
    assert recorder.keys == {("map", "tags", "a"), ("map", "tags", "zzz"), ("map", "tags", "b")}
    assert list(mapping) == ["a", "b"]
    assert ("keys", "tags") in recorder.keys


def test_page_reads_are_recorded_field_by_field() -> None:
    recorder = Recorder()
    link = LinkRef("wiki", "beta", None, False, 7, 3, "See x.")
    proxy = PageProxy(page("alpha", links=(link,)), "alpha", recorder)
    assert proxy.meta.title == "T"
    assert proxy.slug == "alpha"
    assert proxy.markup.links[0].target == "beta"
    assert recorder.keys == {
        ("page", "alpha", "meta.title"),
        ("page", "alpha", "slug"),
        ("page", "alpha", "markup.links.0.target"),
    }


def test_whole_sequences_and_methods_are_recorded_conservatively() -> None:
    recorder = Recorder()
    link = LinkRef("wiki", "beta", None, False, 7, 3)
    proxy = PageProxy(page("alpha", links=(link,)), "alpha", recorder)
    assert len(proxy.markup.links) == 1
    assert [x.target for x in proxy.markup.links] == ["beta"]
    proxy.observable()
    assert recorder.keys == {
        ("page", "alpha", "markup.links.#len"),
        ("page", "alpha", "markup.links"),
        ("page", "alpha", "*"),
    }


def test_recording_index_wraps_every_mapping_and_depends_on_other_fields() -> None:
    recorder = Recorder()
    recorded = recording_index(index(page("alpha")), recorder)
    assert recorded.pages["alpha"].meta.summary == "S"
    assert recorded.articles_by_section.get("mechanism") == ("alpha",)
    assert ("field", "glossary") in recorder.keys  # a tuple: depended on as a whole
    assert ("page", "alpha", "meta.summary") in recorder.keys
    assert ("map", "articles_by_section", "mechanism") in recorder.keys


# -- fingerprints --------------------------------------------------------------------------------


def test_canonical_is_independent_of_set_order_and_distinguishes_types() -> None:
    assert canonical(frozenset({"b", "a", "c"})) == canonical(frozenset({"c", "a", "b"}))
    assert canonical(True) != canonical(1)
    assert canonical(1) != canonical(1.0)
    assert canonical(("a",)) != canonical("a")
    assert canonical(dt.date(2026, 1, 2)) == "date(2026-01-02)"


def test_long_values_are_hashed_short_ones_kept() -> None:
    assert fingerprint("short") == "'short'"
    long_value = fingerprint("x" * 500)
    assert isinstance(long_value, bytes) and len(long_value) == 16
    assert fingerprint("x" * 500) == long_value != fingerprint("x" * 499 + "y")


def test_fingerprinter_follows_recorded_paths() -> None:
    link = LinkRef("wiki", "beta", None, False, 7, 3)
    current = Fingerprinter(index(page("alpha", links=(link,))), {"alpha": "a.html"}, {"t": "d1"})
    assert current(("page", "alpha", "meta.title")) == fingerprint("T")
    assert current(("page", "alpha", "markup.links.0.target")) == fingerprint("beta")
    assert current(("page", "alpha", "markup.links.5.target")) == fingerprint(MISSING)
    assert current(("page", "alpha", "markup.links.#len")) == fingerprint(1)
    assert current(("page", "gone", "meta.title")) == MISSING
    assert current(("map", "pages", "alpha")) is True
    assert current(("map", "files", "alpha")) == fingerprint("a.html")
    assert current(("keys", "pages_by_tag")) == fingerprint(("a",))
    assert current(("template", "t")) == "d1"
    assert current(("template", "missing.html")) == MISSING
    assert current(("no-such-kind",)) == MISSING


def test_template_keys_fall_back_to_all_templates_for_dynamic_includes() -> None:
    assert template_keys(frozenset({"base.html", "a.html"})) == {
        ("template", "base.html"),
        ("template", "a.html"),
    }
    assert template_keys(None) == {("templates",)}


# -- the graph ------------------------------------------------------------------------------------


def graph_for(current: Fingerprinter) -> DepGraph:
    return DepGraph().updated(
        {},
        {
            "page:alpha": ((("alpha.html", "d1"),), frozenset({("page", "alpha", "markup.html")})),
            "page:beta": ((("beta.html", "d2"),), frozenset({("page", "alpha", "meta.title")})),
            "tag:a": ((("tags/a.html", "d3"),), frozenset({("map", "pages_by_tag", "a")})),
        },
        current,
        ["page:alpha", "page:beta", "tag:a"],
    )


WANTED = {"page:alpha": ("alpha.html",), "page:beta": ("beta.html",), "tag:a": ("tags/a.html",)}


def test_body_change_dirties_only_the_reader_of_the_body() -> None:
    graph = graph_for(Fingerprinter(index(page("alpha")), {}, {}))
    now = Fingerprinter(index(page("alpha", html="<p>new</p>")), {}, {})
    changed = graph.changed_keys(now, stable_pages=set())
    assert graph.dirty_nodes(WANTED, changed) == {"page:alpha"}


def test_title_change_dirties_the_pages_showing_it() -> None:
    graph = graph_for(Fingerprinter(index(page("alpha")), {}, {}))
    now = Fingerprinter(index(page("alpha", title="New")), {}, {})
    changed = graph.changed_keys(now, stable_pages=set())
    assert graph.dirty_nodes(WANTED, changed) == {"page:beta"}


def test_stable_pages_are_not_fingerprinted_again() -> None:
    graph = graph_for(Fingerprinter(index(page("alpha")), {}, {}))
    now = Fingerprinter(index(page("alpha", title="New")), {}, {})
    assert graph.changed_keys(now, stable_pages={"alpha"}) == {}


def test_new_moved_and_missing_nodes_are_dirty() -> None:
    graph = graph_for(Fingerprinter(index(page("alpha")), {}, {}))
    wanted = {**WANTED, "page:beta": ("moved/beta.html",), "page:gamma": ("gamma.html",)}
    assert graph.dirty_nodes(wanted, []) == {"page:beta", "page:gamma"}
    assert graph.dirty_nodes(WANTED, [], missing_files={"tags/a.html"}) == {"tag:a"}


def test_gone_nodes_are_dropped_and_unused_keys_compacted() -> None:
    current = Fingerprinter(index(page("alpha")), {}, {})
    graph = graph_for(current)
    smaller = graph.updated({}, {}, current, ["page:alpha"])
    assert set(smaller.nodes) == {"page:alpha"}
    assert smaller.keys == [("page", "alpha", "markup.html")]
    assert smaller.output_manifest() == {"alpha.html": "d1"}


def test_graph_survives_pickling_with_its_key_table() -> None:
    graph = graph_for(Fingerprinter(index(page("alpha")), {}, {}))
    copy = pickle.loads(pickle.dumps(graph))
    assert copy.keys == graph.keys and copy.nodes == graph.nodes
    assert copy.intern(("new",), 1) == len(graph.keys)
    assert isinstance(copy.nodes["page:alpha"], NodeRecord)


def test_update_reuses_fingerprints_computed_by_workers() -> None:
    current = Fingerprinter(index(page("alpha")), {}, {})
    key = ("page", "alpha", "meta.title")
    graph = DepGraph().updated(
        {},
        {"page:beta": ((("b.html", "d"),), frozenset({key}))},
        current,
        ["page:beta"],
        known={key: "from-worker"},
    )
    assert graph.fingerprints == ["from-worker"]


def test_comparing_recorded_values_depends_on_the_whole_value() -> None:
    recorder = Recorder()
    alpha = page("alpha")
    proxy = PageProxy(alpha, "alpha", recorder)
    assert proxy == alpha and proxy.meta == alpha.meta
    assert recorder.keys == {("page", "alpha", "*"), ("page", "alpha", "meta")}


def _changed_one_by_one(
    graph: DepGraph,
    current: Callable[[DepKey], object],
    stable: set[str],
    delta: dict[str, frozenset[str]] | None,
) -> dict[int, object]:
    """changed_keys as first written: every key, in order (the oracle for the groups)."""
    found: dict[int, object] = {}
    for i, key in enumerate(graph.keys):
        if key[0] == "page":
            if key[1] in stable:
                continue
        elif delta is not None and key[0] not in ("template", "templates") and (
            key[0] != "map" or key[2] not in delta.get(key[1], ())
        ):
            continue
        if current(key) != graph.fingerprints[i]:
            found[i] = current(key)
    return found


def test_grouped_key_check_matches_checking_every_key_also_after_copies() -> None:
    chooser = random.Random(7)
    pages = [f"p{n}" for n in range(12)]

    def some_key() -> DepKey:
        kind = chooser.choice(["page", "page", "map", "map", "keys", "field", "template"])
        if kind == "page":
            return ("page", chooser.choice(pages), chooser.choice(["meta.title", "slug", "*"]))
        if kind == "map":
            return ("map", chooser.choice(["backlinks", "related"]), chooser.choice(pages))
        if kind == "template":
            return chooser.choice([("template", "article.html"), ("templates",)])
        return (kind, chooser.choice(["pages_by_tag", "glossary"]))

    graph = DepGraph()
    for _ in range(300):
        key = some_key()
        if key not in graph._ids:
            graph.intern(key, chooser.randrange(3))
    for _generation in range(4):
        values = {key: chooser.randrange(3) for key in graph.keys}
        for _ in range(3):
            stable = set(chooser.sample(pages, chooser.randrange(len(pages) + 1)))
            delta = chooser.choice(
                [None, {}, {"backlinks": frozenset(chooser.sample(pages, 3))}]
            )
            expected = _changed_one_by_one(graph, values.__getitem__, stable, delta)
            got = graph.changed_keys(values.__getitem__, stable, delta)  # type: ignore[arg-type]
            assert got == expected and list(got) == sorted(got)
        assert graph._groups is not None
        graph = graph.copy()  # as each build does: the groups are shared, keys appended
        for _ in range(40):
            key = some_key()
            if key not in graph._ids:
                graph.intern(key, chooser.randrange(3))
        assert graph._groups is not None and graph._groups.count < len(graph.keys)
