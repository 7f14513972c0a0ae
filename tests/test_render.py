"""What the templates are given and what they make of it: metadata (title, description,
canonical, Open Graph, JSON-LD), the infobox and badges, review dates, references, link
previews, the comparison table, and the page-weight budget on the repository site."""

from __future__ import annotations

import json
import re
import statistics
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin

from conftest import MINIMAL_CONFIG, TODAY, article, read_out, run_build

INDICATIONS_CONFIG = MINIMAL_CONFIG + """\
  - id: indications
    title: Indications
    fields:
      status: {label: Regulatory status, type: enum, values: [approved, off-label, investigational]}
      status_note: {label: Approved by / for, type: text}
      evidence: {label: Evidence, type: enum, values: [strong, moderate, low, very low]}
review_interval_days: 30
disclaimer: This site informs; it does not advise.
"""
REFERENCES = """\
smith-2020:
  type: trial
  authors: [Smith J, et al.]
  title: "A trial of something?"
  journal: J Things
  year: 2020
  doi: 10.1000/xyz123
jones-2019:
  type: label
  title: "Product label"
  publisher: Maker Inc
  year: 2019
  url: https://example.org/label
"""
MECH = "status: established"
TRD = """\
status: approved
status_note: "FDA 2019, esketamine only"
evidence: moderate
reviewed_by: [Dr A Reviewer]"""


class _Collector(HTMLParser):
    """Tags with attributes, and the text of <script> elements by type."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.scripts: dict[str, list[str]] = {}
        self._script: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        self.tags.append((tag, attributes))
        if tag == "script":
            self._script = attributes.get("type", "text/javascript")

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self.scripts.setdefault(self._script, []).append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._script = None

    def find(self, tag: str, **attrs: str) -> list[dict[str, str]]:
        return [a for t, a in self.tags
                if t == tag and all(a.get(k.replace("_", "-")) == v for k, v in attrs.items())]


def parse(text: str) -> _Collector:
    collector = _Collector()
    collector.feed(text)
    return collector


def _site(make_site, config: str = INDICATIONS_CONFIG):
    return make_site({
        "content/references.yaml": REFERENCES,
        "content/mechanism/alpha.md": article(
            "Alpha", "See [[beta]] and [[trd|the TRD page]] [@jones-2019].",
            summary="Alpha's summary.", extra=MECH),
        "content/mechanism/beta.md": article(
            "Beta", "Back to [[alpha]].\n\n```python\nprint('hi')\n```\n",
            summary="Beta's summary.", extra=MECH),
        "content/indications/trd.md": article(
            "TRD", "## First part\n\nText [@smith-2020]. More [@jones-2019; @smith-2020].\n\n"
                   "### Detail\n\nSee [[alpha]].",
            summary='Treatment-resistant depression & "quotes".', reviewed="2026-10-01",
            extra=TRD, tags="[depression, esketamine]"),
    }, config=config)


# -- metadata ------------------------------------------------------------------------------


def test_title_description_and_no_canonical_without_base_url(make_site) -> None:
    root = _site(make_site)
    assert run_build(root).ok
    page = parse(read_out(root, "indications/trd/index.html"))
    html = read_out(root, "indications/trd/index.html")
    assert "<title>TRD · Test KB</title>" in html
    assert page.find("meta", name="description")[0]["content"] == \
        'Treatment-resistant depression & "quotes".'
    assert not page.find("link", rel="canonical")
    assert not [a for t, a in page.tags if t == "meta" and a.get("property", "").startswith("og:")]


def test_canonical_and_open_graph_with_base_url(make_site) -> None:
    root = _site(make_site, INDICATIONS_CONFIG + "base_url: https://kb.example.org/docs\n")
    assert run_build(root).ok
    page = parse(read_out(root, "indications/trd/index.html"))
    canonical = "https://kb.example.org/docs/indications/trd/"
    assert page.find("link", rel="canonical")[0]["href"] == canonical
    og = {a["property"]: a["content"] for t, a in page.tags
          if t == "meta" and a.get("property", "").startswith("og:")}
    assert og["og:url"] == canonical
    assert og["og:title"] == "TRD"
    assert og["og:type"] == "article"
    assert og["og:description"].startswith("Treatment-resistant")
    home = parse(read_out(root, "index.html"))
    assert home.find("link", rel="canonical")[0]["href"] == "https://kb.example.org/docs/"
    assert {a["content"] for t, a in home.tags if a.get("property") == "og:type"} == {"website"}


def test_json_ld_medical_web_page(make_site) -> None:
    root = _site(make_site, INDICATIONS_CONFIG + "base_url: https://kb.example.org/\n")
    assert run_build(root).ok
    html = read_out(root, "indications/trd/index.html")
    scripts = parse(html).scripts["application/ld+json"]
    assert len(scripts) == 1
    assert "<" not in scripts[0]  # cannot end the script element early
    data = json.loads(scripts[0])
    assert data["@type"] == "MedicalWebPage"
    assert data["name"] == "TRD"
    assert data["description"] == 'Treatment-resistant depression & "quotes".'
    assert data["lastReviewed"] == "2026-10-01"
    assert data["reviewedBy"] == [{"@type": "Person", "name": "Dr A Reviewer"}]
    assert data["about"]["@type"] == "Drug"
    assert data["url"] == "https://kb.example.org/indications/trd/"
    assert data["isPartOf"] == {"@type": "WebSite", "name": "Test KB",
                                "url": "https://kb.example.org/"}
    citations = data["citation"]
    assert [c["name"] for c in citations] == ["A trial of something?", "Product label"]
    assert citations[0]["sameAs"] == "https://doi.org/10.1000/xyz123"
    assert citations[1]["@type"] == "CreativeWork"
    alpha = json.loads(parse(read_out(root, "mechanism/alpha/index.html"))
                       .scripts["application/ld+json"][0])
    assert "reviewedBy" not in alpha  # only when known


# -- article body parts -----------------------------------------------------------------------


def test_infobox_badges_filters_and_review_dates(make_site) -> None:
    root = _site(make_site)
    assert run_build(root).ok
    html = read_out(root, "indications/trd/index.html")
    infobox = html[html.index('<section class="infobox"'):html.index("</section>")]
    labels = re.findall(r"<dt>(.*?)</dt>", infobox)
    assert labels == ["Regulatory status", "Approved by / for", "Evidence"]  # declared order
    assert '<span class="badge tone-good">approved</span>' in infobox
    assert '<span class="badge tone-info">moderate</span>' in infobox
    assert "FDA 2019, esketamine only" in infobox
    assert '<span hidden data-pagefind-filter="status">approved</span>' in infobox
    assert '<span hidden data-pagefind-filter="evidence">moderate</span>' in infobox
    assert 'data-pagefind-filter="section">Indications</span>' in html
    assert 'data-pagefind-filter="tag">esketamine</span>' in html
    # last_reviewed 2026-10-01 + review_interval_days 30
    assert 'Last reviewed <time datetime="2026-10-01">1 October 2026</time> by Dr A Reviewer' \
        in html
    assert 'Next review due <time datetime="2026-10-31">31 October 2026</time>' in html
    alpha = read_out(root, "mechanism/alpha/index.html")
    assert '<span class="badge tone-good">established</span>' in alpha
    assert 'data-pagefind-filter="status">established' in alpha


def test_disclaimer_on_every_article_and_footer_elsewhere(make_site) -> None:
    root = _site(make_site)
    assert run_build(root).ok
    for rel in ("mechanism/alpha/index.html", "mechanism/beta/index.html",
                "indications/trd/index.html", "index.html"):
        html = read_out(root, rel)
        assert 'class="disclaimer-box"' in html, rel
        assert "This site informs; it does not advise." in html
    for rel in ("glossary/index.html", "tags/index.html", "search/index.html",
                "mechanism/index.html", "404.html"):
        html = read_out(root, rel)
        assert '<p class="disclaimer"><strong>Information, not advice.</strong> This site' \
            in html, rel


def test_numbered_references_with_backlinks_and_toc(make_site) -> None:
    root = _site(make_site)
    assert run_build(root).ok
    html = read_out(root, "indications/trd/index.html")
    refs = html[html.index('<section class="references"'):]
    items = re.findall(r'<li id="ref-(\d+)">(.*?)</li>', refs, re.S)
    assert [n for n, _ in items] == ["1", "2"]  # numbered by first citation
    first, second = items[0][1], items[1][1]
    assert "Smith J, et al.</span> <cite" in first  # no doubled full stop after "et al."
    assert "something?</cite> <span" in first  # nor after a question mark
    assert "J Things</span>, 2020." in first
    assert 'href="https://doi.org/10.1000/xyz123"' in first
    assert 'href="#cite-1-1"' in first and 'href="#cite-1-2"' in first
    assert "Maker Inc</span>, 2019." in second
    assert 'href="https://example.org/label"' in second
    toc = html[html.index('<nav class="toc"'):html.index("</nav>", html.index('<nav class="toc"'))]
    assert '<a href="#first-part">First part</a>' in toc
    assert 'toc-level-3"><a href="#detail">' in toc
    assert '<a href="#references-title">References</a>' in toc


def test_code_styles_only_where_there_is_code(make_site) -> None:
    root = _site(make_site)
    assert run_build(root).ok
    assert "assets/pygments.css" in read_out(root, "mechanism/beta/index.html")
    assert "assets/pygments.css" not in read_out(root, "mechanism/alpha/index.html")
    assert (root / "site" / "assets" / "pygments.css").is_file()


def test_link_previews_json_matches_the_links_pages_carry(make_site) -> None:
    root = _site(make_site)
    assert run_build(root).ok
    previews = json.loads((root / "site" / "previews.json").read_text("utf-8"))
    assert previews["mechanism/beta/index.html"] == {"title": "Beta",
                                                     "summary": "Beta's summary."}
    assert previews["indications/trd/index.html"]["title"] == "TRD"
    # every internal link in an article body resolves to a key, as site.js resolves it
    html = read_out(root, "mechanism/alpha/index.html")
    body = parse(html[html.index('<div class="article-body">'):html.index("disclaimer-box")])
    base = "http://x/mechanism/alpha/index.html"
    hrefs = [a["href"] for a in body.find("a") if not a["href"].startswith("#")]
    assert len(hrefs) == 2
    for href in hrefs:
        file = urljoin(base, href.split("#")[0])[len("http://x/"):]
        file = file + "index.html" if file.endswith("/") or not file else file
        assert file in previews, href


def test_previews_follow_file_urls_when_directory_urls_is_off(make_site) -> None:
    root = _site(make_site, INDICATIONS_CONFIG + "directory_urls: false\n")
    assert run_build(root).ok
    previews = json.loads((root / "site" / "previews.json").read_text("utf-8"))
    assert "mechanism/beta.html" in previews
    assert '<a href="beta.html">Beta</a>' in read_out(root, "mechanism/alpha.html")


# -- other pages -------------------------------------------------------------------------


def test_section_table_sort_values_and_script(make_site) -> None:
    root = _site(make_site)
    assert run_build(root).ok
    html = read_out(root, "indications/index.html")
    assert '<table class="comparison" data-sortable>' in html
    # enum cells sort by declared order: approved=0, moderate=1
    assert '<td class="col-enum" data-sort="0"><span class="badge tone-good">approved' in html
    assert '<td class="col-enum" data-sort="1"><span class="badge tone-info">moderate' in html
    assert 'role="region" aria-labelledby="comparison-caption" tabindex="0"' in html
    assert "static/js/table.js" in html
    assert "static/js/table.js" not in read_out(root, "indications/trd/index.html")


def test_search_box_page_and_switch(make_site) -> None:
    root = _site(make_site)  # MINIMAL_CONFIG says search: false
    assert run_build(root).ok
    # no box and no search link, but the page is still there to explain itself
    assert 'role="search"' not in read_out(root, "mechanism/alpha/index.html")
    assert 'data-bundle="../pagefind/"' in read_out(root, "search/index.html")
    on = make_site({"content/mechanism/alpha.md": article("Alpha", extra=MECH)},
                   config=MINIMAL_CONFIG.replace("search: false", "search: true"), name="on")
    assert run_build(on, search=False).ok
    html = read_out(on, "mechanism/alpha/index.html")
    form = parse(html).find("form", role="search")
    assert form and form[0]["action"] == "../../search/"
    assert 'name="q"' in html and "data-search-input" in html
    search_html = read_out(on, "search/index.html")
    assert "action" not in parse(search_html).find("form", role="search")[0]
    assert search_html.count('role="search"') == 1  # no second box in the header
    assert "static/js/search.js" in search_html and "static/css/search.css" in search_html
    assert "static/js/search.js" not in html


def test_glossary_grouped_by_letter(make_site) -> None:
    root = make_site({
        "content/glossary.yaml": '- term: "Zeta"\n  definition: "Last."\n'
                                 '- term: "alpha"\n  definition: "First."\n'
                                 '- term: "Éclair"\n  definition: "Accented."\n',
        "content/mechanism/a.md": article("A", "alpha and Zeta and Éclair.", extra=MECH),
    })
    assert run_build(root).ok
    html = read_out(root, "glossary/index.html")
    assert re.findall(r'<h2 id="letter-(\w)"', html) == ["a", "e", "z"]
    assert html.index("First.") < html.index("Accented.") < html.index("Last.")


def test_every_page_has_one_h1_lang_skip_link_and_nav_after_main(make_site) -> None:
    root = _site(make_site)
    assert run_build(root).ok
    pages = list((root / "site").rglob("*.html"))
    assert len(pages) >= 10
    for path in pages:
        html = path.read_text("utf-8")
        assert html.count("<h1") == 1, path
        assert '<html lang="en">' in html
        assert '<a class="skip-link" href="#main">' in html
        assert html.index('<main id="main"') < html.index('<nav class="site-nav"'), path


# -- the repository site: light pages ------------------------------------------------------


def _assets(html: str) -> list[str]:
    page = parse(html)
    styles = [a["href"] for a in page.find("link", rel="stylesheet")]
    scripts = [a["src"] for t, a in page.tags if t == "script" and a.get("src")]
    return styles + scripts


def test_typical_article_stays_light_with_its_css_and_js(built_site: Path) -> None:
    """The page-weight budget, on what a phone downloads (gzip, as static hosts serve it) and on
    the raw bytes: median article with its CSS and JS under 25 KB compressed and 80 KB raw.
    (The raw budget was 60 KB for 340-word articles; articles now run to ~650 words, and
    issue #18 allows the knowledge map 15 KB on top of the 63.7 KB measured before it.)"""
    import gzip

    sections = ("mechanism", "indications", "administration", "side-effects", "safety",
                "evidence", "practical-safety", "living-with-treatment")
    articles = [p for s in sections for p in (built_site / s).glob("*/index.html")]
    assert len(articles) >= 30
    raw, compressed = {}, {}
    for path in articles:
        html = path.read_text("utf-8")
        assets = _assets(html)
        assert any(a.endswith("site.css") for a in assets) and any(
            a.endswith("site.js") for a in assets)
        files = [path, *((path.parent / asset).resolve() for asset in assets)]
        raw[path] = sum(f.stat().st_size for f in files)
        compressed[path] = sum(len(gzip.compress(f.read_bytes(), 9)) for f in files)
    typical_raw = statistics.median(raw.values())
    typical_compressed = statistics.median(compressed.values())
    assert typical_compressed < 25_000, f"median article, gzip: {typical_compressed:.0f} bytes"
    assert typical_raw < 80_000, f"median article with CSS and JS: {typical_raw:.0f} bytes"


# -- template mistakes: once, where they are ---------------------------------------------------


MECHANISM = "status: established"


def _articles(count: int) -> dict[str, str]:
    return {
        f"content/mechanism/page-{n:03}.md": article(
            f"Page {n}", f"Body {n}. See [[page-{(n + 1) % count:03}]].", extra=MECHANISM
        )
        for n in range(count)
    }


def test_a_template_mistake_breaking_many_pages_is_reported_once(make_site) -> None:  # type: ignore[no-untyped-def]
    root = make_site(_articles(30))
    template = root / "templates/article.html"
    lines = template.read_text("utf-8").split("\n")
    lines.insert(3, "{{ page.titel }}")  # inside {% block main %}
    template.write_text("\n".join(lines), "utf-8")
    for jobs in (1, 2):  # in-process and in worker processes alike
        result = run_build(root, jobs=jobs)
        errors = [d.format() for d in result.diagnostics if d.is_error]
        assert len(errors) == 1, errors
        assert errors[0].startswith("templates/article.html:4:")
        assert "(while rendering page:page-000 and 29 more)" in errors[0]


def test_a_missing_include_is_reported_at_the_line_that_names_it(make_site) -> None:  # type: ignore[no-untyped-def]
    root = make_site(_articles(3))
    template = root / "templates/article.html"
    lines = template.read_text("utf-8").split("\n")
    lines.insert(3, "{% include 'partials/nowhere.html' %}")
    template.write_text("\n".join(lines), "utf-8")
    errors = [d for d in run_build(root).diagnostics if d.is_error]
    assert [(d.path, d.line) for d in errors] == [("templates/article.html", 4)]
    assert errors[0].message == (
        "template 'partials/nowhere.html' not found (needed for page:page-000 and 2 more)"
    )
    assert errors[0].hint == "create templates/partials/nowhere.html or fix the name on this line"


def test_xml_escape_for_text_and_double_quoted_attributes() -> None:
    from kbgen.feeds import xml_escape

    assert xml_escape('a & b < c > "d"') == 'a &amp; b &lt; c &gt; "d"'
    assert xml_escape('x"y&', quotes=True) == "x&quot;y&amp;"


def test_in_short_leads_the_article_and_describes_it_elsewhere(make_site) -> None:
    plain = "Ketamine is a medicine. Doctors use it to put people to sleep."
    root = make_site({
        "content/mechanism/alpha.md": article(
            "Alpha", "See [[beta]].", summary="Alpha's summary.",
            extra=f"status: established\nin_short: {plain}"),
        "content/mechanism/beta.md": article(
            "Beta", "See [[alpha]].", summary="Beta's summary.", extra="status: established"),
    }, config=MINIMAL_CONFIG + "base_url: https://kb.example.org/\n")
    assert run_build(root).ok
    html = read_out(root, "mechanism/alpha/index.html")
    box = html[html.index('<section class="in-short"'):]
    box = box[:box.index("</section>")]
    assert 'aria-labelledby="in-short-title"' in box
    assert '<h2 id="in-short-title" data-pagefind-ignore>In short</h2>' in box
    assert f"<p>{plain}</p>" in box
    assert f'<meta name="description" content="{plain}">' in html
    assert f'<meta property="og:description" content="{plain}">' in html
    assert f'data-pagefind-meta="summary">{plain}</span>' in html
    assert '<p class="summary">' not in html  # the In short replaces the one-line lede
    previews = json.loads((root / "site" / "previews.json").read_text("utf-8"))
    assert previews["mechanism/alpha/index.html"]["summary"] == plain
    # a page without one keeps its summary everywhere
    other = read_out(root, "mechanism/beta/index.html")
    assert 'class="in-short"' not in other and '<p class="summary">Beta&#39;s summary.</p>' in other
    assert previews["mechanism/beta/index.html"]["summary"] == "Beta's summary."


def test_a_top_level_page_builds_to_its_own_url_and_every_footer_links_about(make_site) -> None:
    about = ("---\ntitle: About this site\nsummary: Who writes it and how.\n"
             "in_short: We write it from the sources. We sign no one's name.\n---\n"
             "We cite [[alpha]]. Report errors by email.\n")
    root = make_site({
        "content/about.md": about,
        "content/mechanism/alpha.md": article(
            "Alpha", "See [[beta]] and [[About this site]].", extra="status: established"),
        "content/mechanism/beta.md": article("Beta", "See [[alpha]].", extra="status: established"),
    }, config=MINIMAL_CONFIG + "base_url: https://kb.example.org/\n")
    result = run_build(root)
    assert result.ok, [d.format() for d in result.diagnostics]
    assert not any("about" in d.path for d in result.diagnostics)
    page = read_out(root, "about/index.html")
    assert "<h1>About this site</h1>" in page and "We write it from the sources." in page
    assert '<a href="../mechanism/alpha/">Alpha</a>' in page
    assert 'data-pagefind-body' in page and "Last reviewed" not in page
    alpha = read_out(root, "mechanism/alpha/index.html")
    assert '<a href="../../about/">About this site</a>' in alpha  # the body link, by title
    for rel, href in [("index.html", "about/"), ("mechanism/alpha/index.html", "../../about/"),
                      ("mechanism/index.html", "../about/"), ("glossary/index.html", "../about/"),
                      ("404.html", "/about/")]:
        footer = read_out(root, rel).split('<footer class="site-footer">')[1]
        assert f'<a href="{href}">About this site</a>' in footer, rel
    assert "https://kb.example.org/about/" in read_out(root, "sitemap.xml")


def test_without_an_about_page_the_footer_has_no_about_link(make_site) -> None:
    root = make_site({
        "content/notes.md": "---\ntitle: Notes\nsummary: Notes.\n---\nText.\n",
        "content/mechanism/alpha.md": article("Alpha", "Text.", extra="status: established"),
    }, config=MINIMAL_CONFIG + "directory_urls: false\n")
    assert run_build(root).ok
    assert "About this site" not in read_out(root, "mechanism/alpha.html")
    assert "<h1>Notes</h1>" in read_out(root, "notes.html")


TABLE_CONFIG = MINIMAL_CONFIG + """\
  - id: safety
    title: Safety
    fields:
      applies_to: {label: Applies to, type: text}
      interactions:
        label: Interactions at a glance
        type: table
        required: false
        columns:
          drug: {label: Drug or class, type: text}
          seriousness: {label: How serious, type: enum, values: [life-threatening, minor]}
          source: {label: Source, type: reference}
"""
INTERACTIONS = """\
applies_to: Everyone
interactions:
  - drug: Opioids
    seriousness: life-threatening
    source: jones-2019
  - drug: Caffeine
    seriousness: minor
    source: smith-2020"""


def test_a_table_field_renders_as_a_captioned_table_citing_its_sources(make_site) -> None:
    root = make_site({
        "content/references.yaml": REFERENCES,
        "content/safety/mixing.md": article("Mixing", "See [[other]] [@smith-2020].",
                                            extra=INTERACTIONS),
        "content/safety/other.md": article("Other", "See [[mixing]].",
                                           extra="applies_to: Adults"),
    }, config=TABLE_CONFIG)
    result = run_build(root)
    assert result.ok, [d.format() for d in result.diagnostics]
    assert not any("never cited" in d.message for d in result.diagnostics)  # jones-2019
    html = read_out(root, "safety/mixing/index.html")
    table = html[html.index('<div class="table-wrap field-table"'):]
    table = table[:table.index("</div>")]
    assert 'role="region" aria-labelledby="table-interactions-caption"' in table
    assert '<caption id="table-interactions-caption">Interactions at a glance</caption>' in table
    assert '<th scope="col" class="col-enum">How serious</th>' in table
    assert '<th scope="row" class="col-text">Opioids</th>' in table
    assert '<span class="badge tone-bad">life-threatening</span>' in table
    # the body cites smith-2020 first (1); the table adds jones-2019 (2)
    assert ('<a class="table-ref" href="#ref-2"><span class="table-ref-number">[2]</span> '
            "Maker Inc 2019</a>") in table
    assert ('<a class="table-ref" href="#ref-1"><span class="table-ref-number">[1]</span> '
            "Smith 2020</a>") in table
    references = html[html.index('<section class="references"'):]
    assert 'id="ref-2"' in references and "Product label" in references
    assert "Mixing" in read_out(root, "bibliography/index.html")
    section = read_out(root, "safety/index.html")
    assert "Applies to" in section and "Interactions at a glance" not in section
    assert "Key facts" in html and html.count("Interactions at a glance") == 1


def test_an_unknown_reference_in_a_table_cell_is_an_error_at_the_cell(make_site) -> None:
    root = make_site({
        "content/references.yaml": REFERENCES,
        "content/safety/mixing.md": article(
            "Mixing", "See [[other]] [@smith-2020] [@jones-2019].",
            extra=INTERACTIONS.replace("source: jones-2019", "source: jones-2091")),
        "content/safety/other.md": article("Other", "See [[mixing]].", extra="applies_to: A"),
    }, config=TABLE_CONFIG)
    result = run_build(root)
    assert not result.ok
    errors = [d.format() for d in result.diagnostics if d.is_error]
    assert errors == ["content/safety/mixing.md:10:13: error: unknown citation key '@jones-2091'\n"
                      "  hint: did you mean 'jones-2019'?"]
def _insert(template: Path, line: int, text: str) -> None:
    lines = template.read_text("utf-8").split("\n")
    lines.insert(line - 1, text)
    template.write_text("\n".join(lines), "utf-8")


def test_a_template_that_extends_itself_is_an_error_at_its_line(make_site) -> None:  # type: ignore[no-untyped-def]
    root = make_site(_articles(3))
    _insert(root / "templates/base.html", 1, '{% extends "base.html" %}')
    errors = [d.format() for d in run_build(root).diagnostics if d.is_error]
    assert errors == [
        "templates/base.html:1:1: error: template 'base.html' extends or includes itself: "
        "base.html -> base.html (needed for 404 and 12 more)\n"
        "  hint: a template cannot extend or include itself, directly or through others; fix "
        "the name on this line"
    ]


def test_templates_that_include_each_other_are_an_error_where_the_loop_closes(make_site) -> None:  # type: ignore[no-untyped-def]
    root = make_site(_articles(2))
    (root / "templates/partials/a.html").write_text("A\n{% include 'partials/b.html' %}\n")
    (root / "templates/partials/b.html").write_text("B\n\n{% include 'partials/a.html' %}\n")
    _insert(root / "templates/article.html", 4, "{% include 'partials/a.html' %}")
    errors = [d for d in run_build(root).diagnostics if d.is_error]
    assert [(d.path, d.line) for d in errors] == [("templates/partials/b.html", 3)]
    assert errors[0].message.startswith(
        "template 'partials/b.html' is part of a loop: partials/a.html -> partials/b.html -> "
        "partials/a.html (needed for page:page-000"
    )


def test_a_render_past_the_time_limit_is_one_error_and_a_fix_recovers(make_site) -> None:  # type: ignore[no-untyped-def]
    from kbgen.incremental import Builder
    from kbgen.pipeline import BuildOptions

    root = make_site(_articles(6), config=MINIMAL_CONFIG + "render_time_limit: 1\n")
    template = root / "templates/article.html"
    good = template.read_text("utf-8")
    _insert(template, 4, "{% for i in range(10**12) %}{% endfor %}")
    builder = Builder(root / "config.yaml", BuildOptions(today=TODAY, jobs=1))  # as serve keeps
    errors = [d.format() for d in builder.build().diagnostics if d.is_error]
    assert errors == [
        "templates/article.html:4:1: error: templates/article.html took longer than 1 s to "
        "render, stopped on this line (while rendering page:page-000 and 5 more)\n"
        "  hint: look for a loop over a huge range or a runaway recursion here; a page that "
        "really needs longer can raise render_time_limit in config.yaml"
    ]
    template.write_text(good, "utf-8")
    result = builder.build()
    assert result.ok, [d.format() for d in result.diagnostics]
    assert (root / "site/mechanism/page-000/index.html").exists()
