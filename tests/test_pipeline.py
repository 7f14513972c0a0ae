"""End-to-end builds of tiny sites through the real pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import TODAY, article, read_out, run_build, snapshot

import kbgen.incremental.state
from kbgen.incremental import Builder
from kbgen.pipeline import BuildOptions

MECH = 'status: established'


def test_build_writes_pages_sections_tags_and_site_files(make_site) -> None:
    root = make_site({
        "content/mechanism/alpha.md": article("Alpha", "See [[beta]].", extra=MECH),
        "content/mechanism/beta.md": article("Beta", "Back to [[alpha]].", extra=MECH),
    })
    result = run_build(root)
    assert result.ok, result.diagnostics
    site = root / "site"
    for rel in ("index.html", "mechanism/index.html", "mechanism/alpha/index.html",
                "mechanism/beta/index.html", "tags/index.html", "tags/test/index.html",
                "glossary/index.html", "bibliography/index.html", "search/index.html",
                "404.html", "robots.txt", "feed.xml", "assets/pygments.css",
                "static/css/site.css", ".kbgen-site"):
        assert (site / rel).is_file(), rel
    assert not (site / "sitemap.xml").exists()  # needs base_url
    alpha = read_out(root, "mechanism/alpha/index.html")
    assert '<a href="../beta/">Beta</a>' in alpha
    assert '<html lang="en">' in alpha and alpha.count("<h1") == 1


def test_same_input_gives_byte_identical_output(make_site) -> None:
    root = make_site({"content/mechanism/alpha.md": article("Alpha", "Hi [[alpha]].",
                                                            extra=MECH)})
    assert run_build(root).ok
    first = snapshot(root / "site")
    assert run_build(root).ok
    assert snapshot(root / "site") == first


def test_no_directory_urls_links_to_html_files(make_site) -> None:
    from conftest import MINIMAL_CONFIG

    root = make_site({
        "content/mechanism/alpha.md": article("Alpha", "See [[beta]].", extra=MECH),
        "content/mechanism/beta.md": article("Beta", "Back to [[alpha]].", extra=MECH),
    }, config=MINIMAL_CONFIG + "directory_urls: false\n")
    assert run_build(root).ok
    alpha = read_out(root, "mechanism/alpha.html")
    assert '<a href="beta.html">Beta</a>' in alpha
    assert 'href="../index.html"' in alpha  # home works from file://


def test_errors_write_nothing(make_site) -> None:
    root = make_site({"content/mechanism/alpha.md": article("Alpha", "See [[nope]].",
                                                            extra=MECH)})
    result = run_build(root)
    assert not result.ok
    assert not (root / "site").exists()


def test_build_never_writes_into_sources(make_site) -> None:
    root = make_site({"content/mechanism/alpha.md": article("Alpha", extra=MECH)})
    before = {p: p.read_bytes() for p in Path(root).rglob("*") if p.is_file()}
    assert run_build(root).ok
    for path, data in before.items():
        assert path.read_bytes() == data
    created = {p for p in Path(root).rglob("*") if p.is_file()} - set(before)
    # The output folder and the build cache (config.cache_dir) are a build's only writes.
    assert all(p.is_relative_to(root / "site") or p.is_relative_to(root / ".kbgen-cache")
               for p in created)


def test_a_state_save_cut_short_is_still_owed(make_site, monkeypatch) -> None:
    """`serve` saves the state right after its first build; a Ctrl-C or SIGTERM landing
    in that save must leave it owed, so the shutdown path writes it and the next start is
    warm."""
    root = make_site({"content/mechanism/alpha.md": article("Alpha", "Hi.", extra=MECH)})
    builder = Builder(root / "config.yaml", BuildOptions(defer_state=True, today=TODAY))
    assert builder.build().ok and builder.state_unsaved
    write = kbgen.incremental.state.save_state

    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(kbgen.incremental.state, "save_state", interrupted)
    with pytest.raises(KeyboardInterrupt):
        builder.save_state()
    assert builder.state_unsaved
    monkeypatch.setattr(kbgen.incremental.state, "save_state", write)
    builder.save_state()  # what the shutdown path does
    assert not builder.state_unsaved
    assert run_build(root).mode == "unchanged"  # the next process starts warm


# -- the reference build ---------------------------------------------------------------------


def test_reference_build_writes_what_the_builder_writes_for_the_repository(
    tmp_path: Path,
) -> None:
    from conftest import REPO

    from kbgen.pipeline import build_site

    reference = tmp_path / "reference"
    builder = tmp_path / "builder"
    options = {"today": TODAY, "search": False}
    first = build_site(REPO / "config.yaml", BuildOptions(output=reference, **options))
    second = Builder(
        REPO / "config.yaml", BuildOptions(output=builder, cache=False, **options)
    ).build()
    assert first.ok and second.ok
    assert [d.format() for d in first.diagnostics] == [d.format() for d in second.diagnostics]
    assert snapshot(reference) == snapshot(builder)


def test_reference_build_loads_through_any_mapper_with_the_same_output(
    make_site, tmp_path: Path
) -> None:
    from concurrent.futures import ProcessPoolExecutor

    from kbgen.pipeline import build_site

    root = make_site({
        f"content/mechanism/p{i}.md": article(f"P{i}", f"See [[p{(i + 1) % 6}]].", extra=MECH)
        for i in range(6)
    })
    one = build_site(root / "config.yaml", BuildOptions(output=tmp_path / "one", today=TODAY))
    with ProcessPoolExecutor(2) as pool:
        many = build_site(
            root / "config.yaml",
            BuildOptions(output=tmp_path / "many", today=TODAY),
            mapper=lambda load, files: pool.map(load, files, chunksize=2),
        )
    assert one.ok and many.ok
    assert snapshot(tmp_path / "one") == snapshot(tmp_path / "many")
