"""Link syntax, source positions, placeholders and relative URLs (kbgen/links.py)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kbgen import links


def test_parse_wikilink_parts() -> None:
    assert links.parse_wikilink("nmda#block|the block") == links.WikiTarget(
        "nmda", "block", "the block")
    assert links.parse_wikilink("  NMDA  receptor ") == links.WikiTarget("NMDA receptor", None,
                                                                         None)


def test_parse_citation_group_with_locators() -> None:
    assert links.parse_citation_group("@a; @b, p. 12") == [("a", None), ("b", "p. 12")]
    assert links.parse_citation_group("@spravato-pi") == [("spravato-pi", None)]
    assert links.parse_citation_group("see @a") is None
    assert links.parse_citation_group("@a; b") is None


def test_scan_positions_skips_code_and_reports_columns() -> None:
    body = "\n".join([
        "Intro [[alpha]] and [x](../s/beta.md#h) [@k1; @k2, p. 3].",
        "`[[not-a-link]]` and ``[@nope]``",
        "```",
        "[[fenced]]",
        "```",
        "[ref]: gamma.md",
    ])
    found = links.scan_positions(body, body_line=5)
    assert [(r.kind, r.raw, r.line, r.col) for r in found] == [
        ("wiki", "alpha", 5, 7),
        ("cite", "k1", 5, 42),
        ("cite", "k2", 5, 47),
        ("url", "../s/beta.md#h", 5, 25),
        ("url", "gamma.md", 10, 8),
    ]


def test_position_matcher_hands_out_occurrences_in_order() -> None:
    scanned = [links.ScannedRef("wiki", "a", 3, 1), links.ScannedRef("wiki", "a", 7, 4)]
    matcher = links.PositionMatcher(scanned, fallback_line=2)
    assert matcher.take("wiki", "a") == (3, 1)
    assert matcher.take("wiki", "a") == (7, 4)
    assert matcher.take("wiki", "a") == (2, 1)


def test_placeholders_round_trip() -> None:
    text = f'<a href="{links.link_placeholder(0)}">{links.title_placeholder(0)}</a>' \
        f'{links.route_placeholder("glossary", "term-x")}'
    seen: list[tuple[str, str]] = []
    out = links.substitute(text, lambda kind, payload: seen.append((kind, payload)) or kind)
    assert seen == [("L", "0"), ("T", "0"), ("P", "glossary#term-x")]
    assert out == '<a href="L">T</a>P'
    assert links.strip_placeholders(text) == '<a href=""></a>'


def test_relative_urls_for_both_url_styles() -> None:
    assert links.relative_url("mechanism/a/index.html", "mechanism/b/index.html", True) == "../b/"
    assert links.relative_url("index.html", "index.html", True) == "./"
    assert links.relative_url("mechanism/a/index.html", "index.html", True) == "../../"
    assert links.relative_url("mechanism/a.html", "routes/b.html", False) == "../routes/b.html"
    assert links.relative_url("mechanism/a.html", "index.html", False) == "../index.html"


def test_internal_markdown_link_detection() -> None:
    assert links.is_internal_markdown_link("../x/page.md#a")
    assert links.is_internal_markdown_link("page.md")
    assert not links.is_internal_markdown_link("https://example.org/page.md")
    assert not links.is_internal_markdown_link("/abs/page.md")
    assert not links.is_internal_markdown_link("#anchor")
    assert links.resolve_relative_path("mechanism/a.md", "../routes/b.md") == "routes/b.md"
    assert links.resolve_relative_path("mechanism/a.md", "../../escape.md") is None


def test_unsafe_schemes_including_obfuscated_forms() -> None:
    for url in ("javascript:alert(1)", " JavaScript:alert(1)", "java\tscript:x", "vbscript:x",
                "data:text/html,<script>", "DATA:text/html;base64,xx"):
        assert links.unsafe_scheme(url) is not None, url
    assert links.unsafe_scheme("data:image/png;base64,AAAA", is_image=True) is None
    assert links.unsafe_scheme("data:image/svg+xml,<svg>", is_image=True) == "data"
    assert links.unsafe_scheme("https://example.org") is None
    assert links.unsafe_scheme("relative/path") is None


@given(
    st.lists(st.sampled_from(["a", "b", "index.html", "x.html", "tags"]), min_size=1, max_size=4),
    st.lists(st.sampled_from(["a", "b", "index.html", "x.html", "tags"]), min_size=1, max_size=4),
)
@settings(max_examples=300, deadline=None)
def test_relative_path_fast_path_equals_posixpath_relpath(
    source: list[str], target: list[str]
) -> None:
    import posixpath

    from_file, to_file = "/".join(source), "/".join(target)
    expected = posixpath.relpath(to_file, posixpath.dirname(from_file) or ".")
    assert links._relative_path(to_file, from_file) == expected
