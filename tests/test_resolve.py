"""The knowledge graph (kbgen/resolve.py): links, backlinks, related, tags, order, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import anchors, article, read_out, run_build

from kbgen.incremental import Builder
from kbgen.pipeline import BuildOptions
from kbgen.site_index import SiteIndex

M = "status: established"
R = "bioavailability: '48%'"


def graph_files() -> dict[str, str]:
    return {
        "content/mechanism/alpha.md": article(
            "Alpha", "Alpha links [[beta]] and [[Gamma page]].\n\n## Part A\n\nText.",
            extra=f"{M}\norder: 2\nrelated: [delta]", tags="[shared, a]"),
        "content/mechanism/beta.md": article(
            "Beta", "Beta cites [[alpha#part-a|part A of alpha]]. Also [[gamma]].",
            extra=f"{M}\norder: 1", tags="[shared]"),
        "content/mechanism/gamma.md": article(
            "Gamma page", "Gamma has [a link](beta.md) and [[Delta alias]].",
            extra=f"{M}\naliases: [Gamma alias]", tags="[c]"),
        "content/routes/delta.md": article(
            "Delta", "Delta points to [[alpha]].", extra=f"{R}\naliases: [Delta alias]",
            tags="[shared, c]"),
    }


@pytest.fixture
def graph(make_site) -> tuple[Path, SiteIndex]:
    root = make_site(graph_files())
    builder = Builder(root / "config.yaml", BuildOptions(today=__import__("conftest").TODAY))
    result = builder.build()
    assert result.ok, [d.format() for d in result.diagnostics]
    assert builder.index is not None
    return root, builder.index


def test_backlinks_are_exact_and_carry_context(graph: tuple[Path, SiteIndex]) -> None:
    _, index = graph
    backlinks = {key: [(b.source_slug, b.context) for b in links]
                 for key, links in index.backlinks.items()}
    assert backlinks["alpha"] == [("beta", "Beta cites part A of alpha."),
                                  ("delta", "Delta points to \x1aT0\x1a.")]
    assert sorted(s for s, _ in backlinks["beta"]) == ["alpha", "gamma"]
    assert sorted(s for s, _ in backlinks["gamma"]) == ["alpha", "beta"]
    assert sorted(s for s, _ in backlinks["delta"]) == ["gamma"]


def test_related_prev_next_and_tags(graph: tuple[Path, SiteIndex]) -> None:
    _, index = graph
    assert index.related["alpha"][0] == "delta"  # explicit related comes first
    assert set(index.related["alpha"]) == {"delta", "beta", "gamma"}
    assert index.articles_by_section["mechanism"] == ("beta", "alpha", "gamma")  # order, then title
    assert index.prev_next("alpha") == ("beta", "gamma")
    assert index.prev_next("beta") == (None, "alpha")
    assert index.prev_next("delta") == (None, None)
    assert index.pages_by_tag == {"a": ("alpha",), "c": ("delta", "gamma"),
                                  "shared": ("alpha", "beta", "delta")}


def test_rendered_article_shows_graph(graph: tuple[Path, SiteIndex]) -> None:
    root, _ = graph
    html = read_out(root, "mechanism/alpha/index.html")
    links = anchors(html)
    assert "Beta cites part A of alpha." in html and "Delta points to Alpha." in html
    assert [(h, a["rel"]) for h, _, a in links if a.get("rel") in ("prev", "next")] == [
        ("../beta/", "prev"), ("../gamma/", "next")]
    assert ("../gamma/", "Gamma page") in [(h, t) for h, t, _ in links]  # resolved by title
    beta = [(h, t) for h, t, _ in anchors(read_out(root, "mechanism/beta/index.html"))]
    assert ("../alpha/#part-a", "part A of alpha") in beta
    gamma = [(h, t) for h, t, _ in anchors(read_out(root, "mechanism/gamma/index.html"))]
    assert ("../../routes/delta/", "Delta alias") in gamma  # the text as written
    assert ("../beta/", "a link") in gamma  # a relative .md link
    tag = read_out(root, "tags/shared/index.html")
    assert tag.index(">Alpha<") < tag.index(">Beta<") < tag.index(">Delta<")
    section = read_out(root, "mechanism/index.html")
    assert section.index(">Beta<") < section.index(">Alpha<") < section.index(">Gamma page<")


def test_title_edit_changes_link_text_everywhere(make_site) -> None:
    root = make_site(graph_files())
    assert run_build(root).ok
    delta = [(h, t) for h, t, _ in anchors(read_out(root, "routes/delta/index.html"))]
    assert ("../../mechanism/alpha/", "Alpha") in delta
    path = root / "content/mechanism/alpha.md"
    path.write_text(path.read_text().replace("title: Alpha", "title: Alpha renamed"))
    assert run_build(root).ok
    delta = [(h, t) for h, t, _ in anchors(read_out(root, "routes/delta/index.html"))]
    assert ("../../mechanism/alpha/", "Alpha renamed") in delta
    assert ("../../mechanism/alpha/", "Alpha") not in delta
    assert "Delta points to Alpha renamed." in read_out(root, "mechanism/alpha/index.html")


def diagnostics_for(make_site, files: dict[str, str]) -> list[str]:
    root = make_site(files)
    result = run_build(root, write=False)
    return [d.format() for d in result.diagnostics if d.is_error]


def test_unknown_target_reports_position_and_suggestion(make_site) -> None:
    files = graph_files()
    files["content/mechanism/beta.md"] = article("Beta", "Intro.\n\nSee  [[alpah]] now.", extra=M)
    assert diagnostics_for(make_site, files) == [
        "content/mechanism/beta.md:10:6: error: link target 'alpah' does not exist\n"
        "  hint: did you mean 'alpha'?"]


def test_unknown_anchor_and_missing_file(make_site) -> None:
    files = graph_files()
    files["content/mechanism/beta.md"] = article(
        "Beta", "[[alpha#part-b]] and [x](../routes/deltaa.md)", extra=M)
    assert diagnostics_for(make_site, files) == [
        "content/mechanism/beta.md:8:1: error: anchor '#part-b' does not exist in 'alpha'\n"
        "  hint: did you mean 'part-a'?",
        "content/mechanism/beta.md:8:26: error: linked file '../routes/deltaa.md' does not exist\n"
        "  hint: did you mean '../routes/delta.md'?"]


def test_ambiguous_alias_names_both_files(make_site) -> None:
    files = graph_files()
    files["content/routes/epsilon.md"] = article("Epsilon", "[[Gamma alias]] [[alpha]] [[beta]]",
                                                 extra=f"{R}\naliases: [Gamma alias]")
    errors = diagnostics_for(make_site, files)
    assert errors == [
        "content/routes/epsilon.md:9:1: error: link target 'Gamma alias' is ambiguous: it "
        "matches content/mechanism/gamma.md and content/routes/epsilon.md\n"
        "  hint: link by slug instead of title or alias"]


def test_published_page_linking_to_draft_is_an_error(make_site) -> None:
    files = graph_files()
    files["content/routes/delta.md"] = article("Delta", "Delta points to [[alpha]].",
                                               extra=f"{R}\ndraft: true\naliases: [Delta alias]")
    errors = diagnostics_for(make_site, files)
    assert errors == [
        "content/mechanism/alpha.md:8:1: error: related article 'delta' does not exist\n"
        "  hint: did you mean 'beta'?",
        "content/mechanism/gamma.md:9:33: error: published page links to draft 'delta' "
        "(content/routes/delta.md)\n"
        "  hint: publish the draft (remove 'draft: true') or remove the link"]


def test_duplicate_and_case_only_slugs_name_both_files(make_site) -> None:
    files = graph_files()
    files["content/routes/alpha.md"] = article("Alpha 2", "[[beta]]", extra=R)
    files["content/routes/Beta.md"] = article("Beta 2", "[[gamma]]", extra=R)
    errors = diagnostics_for(make_site, files)
    assert any(e.startswith("content/routes/Beta.md:") and e.endswith(
        "error: slug 'Beta' differs only in case from 'beta' (content/mechanism/beta.md)\n"
        "  hint: URLs clash on case-insensitive file systems; rename one") for e in errors)
    assert any(e.startswith("content/routes/alpha.md:") and "error: duplicate slug 'alpha': "
               "also used by content/mechanism/alpha.md" in e for e in errors)


def test_orphans_and_dead_ends_are_warnings(make_site) -> None:
    files = graph_files()
    files["content/routes/lonely.md"] = article("Lonely", "No links here.", extra=R)
    root = make_site(files)
    result = run_build(root, write=False)
    warnings = [d.format() for d in result.diagnostics if not d.is_error]
    assert "content/routes/lonely.md:1:1: warning: orphan article: no other page links to it\n" \
        "  hint: link to it from a related article with [[lonely]]" in warnings
    assert "content/routes/lonely.md:1:1: warning: article has no links to other articles\n" \
        "  hint: link related ideas with [[slug]]" in warnings
    assert result.ok


def test_links_to_a_page_that_failed_to_load_are_not_reported_again(make_site) -> None:  # type: ignore[no-untyped-def]
    files = graph_files()
    files["content/mechanism/alpha.md"] = '---\ntitle: "Alpha\n---\nBroken front matter.\n'
    files["content/routes/delta.md"] = article(
        "Delta", "Delta points to [[alpha]], [alpha](../mechanism/alpha.md) and [[nowhere]].",
        extra=f"{R}\naliases: [Delta alias]", tags="[shared, c]")
    root = make_site(files)
    result = Builder(root / "config.yaml", BuildOptions(today=__import__("conftest").TODAY)).build()
    errors = [d.format() for d in result.diagnostics if d.is_error]
    # The root cause once, and the link to a page that really does not exist; no cascade
    # of "does not exist" errors for the page that is there but broken.
    assert len(errors) == 2, errors
    assert errors[0].startswith("content/mechanism/alpha.md:2:")
    assert "quoted value is not closed" in errors[0]
    assert errors[1].startswith("content/routes/delta.md:")
    assert "link target 'nowhere' does not exist" in errors[1]
