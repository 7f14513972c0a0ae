"""Trust model: hostile content cannot get script into a page, run code, or read files.

* raw HTML is escaped by default; `markdown.raw_html: sanitize` cleans it with nh3 and the
  allowlist in kbgen/markup_rawhtml.py; `allow` passes it through (a documented opt-in);
* `javascript:`, `vbscript:`, `file:` and non-image `data:` URLs are refused in links and
  images, also when obfuscated, in every raw_html mode (a diagnostic, not silent removal);
* attributes our extensions write (link titles, image alt, code-fence language, wikilink
  text, citation locators, glossary definitions) are escaped, and `{: ...}` attribute lists
  cannot add event handlers or styles;
* YAML is composed with a safe loader and tags are refused, so no value constructs objects;
* a symlink in static/ that leaves the project is refused, not copied.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import REPO, article, run_build, run_cli, snapshot

from kbgen.config_types import MarkdownOptions
from kbgen.markup import MarkupEngine
from kbgen.markup_rawhtml import SANITIZE_TAGS
from kbgen.markup_urls import url_scheme_refused
from kbgen.model import GlossaryTerm

MECH = "status: established"
SCRIPT = '"><script>alert(1)</script>'


def convert(body: str, raw_html: str = "escape", glossary: tuple[GlossaryTerm, ...] = ()):
    return MarkupEngine(MarkdownOptions(raw_html=raw_html), glossary).convert(body, 10)


def messages(markup) -> list[tuple[int, int, str]]:
    return [(line, col, message) for line, col, message, _ in markup.problems]


# -- raw HTML ------------------------------------------------------------------------------


RAW = (
    "<script>alert(1)</script>\n\n"
    '<div onclick="alert(2)"><b>bold</b> <iframe src="https://evil.example"></iframe></div>\n\n'
    'Inline <img src="x.png" onerror="alert(3)"> and <span style="position:fixed">s</span>.'
)


def test_raw_html_is_escaped_by_default() -> None:
    html = convert(RAW).html
    assert "<script" not in html and "<div" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=&quot;x.png&quot; onerror=&quot;alert(3)&quot;&gt;" in html or (
        '&lt;img src="x.png" onerror="alert(3)"&gt;' in html
    )


def test_sanitize_keeps_allowlisted_tags_and_drops_scripts_handlers_and_styles() -> None:
    html = convert(RAW, raw_html="sanitize").html
    assert "<b>bold</b>" in html and "<div>" in html
    for gone in ("<script", "alert(1)", "onclick", "<iframe", "onerror", "style="):
        assert gone not in html, gone
    assert '<img src="x.png">' in html


def test_sanitize_allowlist_is_the_documented_one() -> None:
    # README (trust model) documents exactly these; a change here must change the docs.
    assert {"script", "style", "iframe", "object", "embed", "form", "input"}.isdisjoint(
        SANITIZE_TAGS
    )
    assert {"p", "a", "img", "table", "details", "summary", "abbr", "sup"} <= SANITIZE_TAGS


def test_allow_passes_raw_html_through_unchanged() -> None:
    html = convert(RAW, raw_html="allow").html
    assert "<script>alert(1)</script>" in html and 'onclick="alert(2)"' in html


@pytest.mark.parametrize("mode", ["sanitize", "allow"])
def test_unsafe_urls_in_raw_html_are_refused_in_every_mode(mode: str) -> None:
    body = 'Intro.\n\n<a href="&#106;avascript:alert(1)">x</a> <img src="data:text/html,x">\n'
    problems = messages(convert(body, raw_html=mode))
    assert (12, 4, "link URL with the unsafe scheme 'javascript:' is not allowed") in problems
    assert (12, 52, "image URL with the unsafe scheme 'data:' is not allowed") in problems


# -- unsafe URL schemes ----------------------------------------------------------------------

UNSAFE_LINKS = [
    ("javascript:alert(1)", "javascript"),
    ("JaVaScRiPt:alert(1)", "javascript"),
    (" javascript:alert(1)", "javascript"),
    ("java\tscript:alert(1)", "javascript"),
    ("java\nscript:alert(1)", "javascript"),
    ("&#106;avascript:alert(1)", "javascript"),
    ("&#x6A;avascript:alert(1)", "javascript"),
    ("javascript&#58;alert(1)", "javascript"),
    ("java&#x09;script:alert(1)", "javascript"),
    ("&amp;#106;avascript:alert(1)", "javascript"),
    ("vbscript:msgbox(1)", "vbscript"),
    ("VBScript:msgbox(1)", "vbscript"),
    ("data:text/html;base64,PHNjcmlwdD4=", "data"),
    ("data:image/png;base64,iVBOR", "data"),  # not an image element: refused
    ("file:///etc/passwd", "file"),
]


@pytest.mark.parametrize(("url", "scheme"), UNSAFE_LINKS)
def test_unsafe_link_schemes_are_refused_even_obfuscated(url: str, scheme: str) -> None:
    assert url_scheme_refused(url) == scheme


@pytest.mark.parametrize(
    ("url", "refused"),
    [
        ("data:image/png;base64,iVBOR", None),
        ("data:image/svg+xml;base64,PHN2Zz4=", "data"),  # SVG can carry script
        ("data:text/html,x", "data"),
        ("javascript:alert(1)", "javascript"),
        ("https://example.org/x.png", None),
        ("images/x.png", None),
    ],
)
def test_image_sources_allow_only_raster_data_urls(url: str, refused: str | None) -> None:
    assert url_scheme_refused(url, is_image=True) == refused


@pytest.mark.parametrize(
    "url", ["https://example.org", "mailto:a@example.org", "../routes/oral.md", "#intro", "x.md"]
)
def test_ordinary_urls_pass(url: str) -> None:
    assert url_scheme_refused(url) is None


def test_unsafe_link_is_a_diagnostic_at_its_position_and_never_reaches_the_html() -> None:
    body = (
        "Text.\n\n[a](javascript:alert(1)) and ![b](vbscript:x)\n\n[c][ref]\n\n"
        "[ref]: data:text/html,x"
    )
    markup = convert(body)
    assert messages(markup) == [
        (12, 5, "link URL with the unsafe scheme 'javascript:' is not allowed"),
        (12, 35, "image URL with the unsafe scheme 'vbscript:' is not allowed"),
        (16, 8, "link URL with the unsafe scheme 'data:' is not allowed"),
    ]
    for text in ("javascript", "vbscript", "data:"):
        assert text not in markup.html


def test_build_fails_on_an_unsafe_link_and_writes_nothing(make_site) -> None:
    root = make_site({"content/mechanism/a.md": article("A", "[x](JAVASCRIPT:alert(1))",
                                                        extra=MECH)})
    result = run_cli(root, "build")
    assert result.returncode == 1
    assert "content/mechanism/a.md:8:5: error: link URL with the unsafe scheme 'javascript:'" \
        in result.stderr
    assert not (root / "site").exists()


# -- attributes our extensions write ------------------------------------------------------


def test_attribute_lists_cannot_add_event_handlers_styles_or_script_urls() -> None:
    body = (
        "Para.\n{: onmouseover=\"alert(1)\" }\n\n"
        "[l](https://example.org){: style=\"position:fixed\" formaction=\"javascript:x\" }\n\n"
        "[m](https://example.org){: href=\"javascript:alert(1)\" }"
    )
    markup = convert(body)
    assert messages(markup) == [
        (11, 4, "the HTML attribute 'onmouseover' is not allowed"),
        (13, 28, "the HTML attribute 'style' is not allowed"),
        (13, 51, "the HTML attribute 'formaction' is not allowed"),
        (15, 34, "link URL with the unsafe scheme 'javascript:' is not allowed"),
    ]
    for text in ("onmouseover", "style=", "formaction", "javascript"):
        assert text not in markup.html


def test_attribute_lists_keep_harmless_attributes_and_table_alignment() -> None:
    body = "## Title {: #custom .wide lang=fr }\n\n| a | b |\n|:--|--:|\n| 1 | 2 |"
    markup = convert(body)
    assert markup.problems == ()
    assert 'id="custom"' in markup.html and 'lang="fr"' in markup.html
    assert 'style="text-align: left;"' in markup.html


@pytest.mark.parametrize(
    ("body", "escaped"),
    [
        (f'[t](https://example.org "{SCRIPT.replace(chr(34), chr(39))}")', "&gt;&lt;script&gt;"),
        (f"![alt {SCRIPT}](https://example.org/x.png)", 'alt="alt &quot;&gt;&lt;script&gt;'),
        (f"[[target|{SCRIPT}]]", '"&gt;&lt;script&gt;alert(1)&lt;/script&gt;</a>'),
        (f"Text [@key, p. {SCRIPT}].", '(p. "&gt;&lt;script&gt;alert(1)&lt;/script&gt;)'),
        (f"```{SCRIPT}\ncode\n```", "&lt;script&gt;"),
        (f"```python {SCRIPT}\ncode\n```", "&lt;script&gt;"),
        (f"Word[^1].\n\n[^1]: {SCRIPT}", "&lt;script&gt;alert(1)&lt;/script&gt;"),
        (f"## Heading {SCRIPT}", "&lt;script&gt;alert(1)&lt;/script&gt;"),
    ],
)
def test_text_our_extensions_put_in_attributes_and_elements_is_escaped(
    body: str, escaped: str
) -> None:
    html = convert(body).html
    assert "<script" not in html
    assert escaped in html, html


def test_glossary_definition_in_a_title_attribute_is_escaped() -> None:
    term = GlossaryTerm("term-nmda", "NMDA", f"Definition {SCRIPT}", (), None, 1)
    html = convert("The NMDA receptor.", glossary=(term,)).html
    assert 'title="Definition &quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in html


# -- a whole hostile site ------------------------------------------------------------------

HOSTILE_CONFIG = """\
title: 'KB "><script>alert(101)</script>'
description: '"><script>alert(102)</script>'
disclaimer: '<script>alert(103)</script>'
base_url: https://kb.example.org/
search: false
sections:
  - id: mechanism
    title: '"><script>alert(104)</script>'
    description: '<img src=x onerror=alert(105)>'
    fields:
      status:
        label: '"><script>alert(106)</script>'
        type: enum
        values: ['"><img src=x onerror=alert(107)>', plain]
"""
HOSTILE_A = """\
---
title: '"><script>alert(201)</script>'
summary: '"><script>alert(202)</script>'
last_reviewed: 2026-11-01
tags: ['"><img src=x onerror=alert(203)>']
aliases: ['"><b>alias</b>']
reviewed_by: ['"><script>alert(204)</script>']
status: '"><img src=x onerror=alert(107)>'
---
See [["><b>alias</b>]] then [[beta|"><script>alert(205)</script>]] and [[beta]]
[@ref-1, p. "><script>alert(206)</script>].

The NMDA receptor and [a link](https://example.org "x\\"><script>alert(207)</script>").

![alt "><script>alert(208)</script>](https://example.org/x.png)

## Heading "><script>alert(209)</script>

<script>alert(210)</script>

```"><script>alert(211)</script>
code
```

Note[^1].

[^1]: "><script>alert(212)</script>

*[HTML]: "><script>alert(213)</script>

HTML abbreviation.
"""
HOSTILE_B = """\
---
title: '</script><script>alert(301)</script><!--'
summary: '<!--<script>alert(302)</script>'
last_reviewed: 2026-11-01
status: plain
---
Back to [["><b>alias</b>]].
"""
HOSTILE_REFERENCES = """\
ref-1:
  type: trial
  authors: ['"><script>alert(401)</script>']
  title: '"><script>alert(402)</script>'
  journal: '"><script>alert(403)</script>'
  url: 'https://example.org/"><script>alert(404)</script>'
"""
HOSTILE_GLOSSARY = """\
- term: NMDA
  definition: '"><script>alert(501)</script>'
  aliases: ['"><b>n</b>']
"""


class _PageAudit(HTMLParser):
    """Collects everything in a page that could run script."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self._in_script: dict[str, str | None] | None = None
        self.json_ld: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"<{tag} {name}=...>")
            is_url = name in ("href", "src", "action", "formaction") and bool(value)
            if is_url and url_scheme_refused(value or "", is_image=tag == "img") is not None:
                self.problems.append(f"<{tag} {name}={value!r}>")
        if tag == "script":
            self._in_script = attributes
            if "src" not in attributes and attributes.get("type") != "application/ld+json":
                self.problems.append(f"inline <script {attributes}>")
        if tag in ("iframe", "object", "embed", "base"):
            self.problems.append(f"<{tag}>")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = None

    def handle_data(self, data: str) -> None:
        if self._in_script is None:
            return
        if self._in_script.get("type") == "application/ld+json":
            self.json_ld.append(data)
            if "<" in data:  # '</script' or '<!--' could end or bend the element
                self.problems.append(f"'<' in JSON-LD {data[:80]!r}")
        elif data.strip():
            self.problems.append(f"script text {data[:80]!r}")


def test_a_hostile_site_builds_with_every_string_escaped(make_site) -> None:
    root = make_site(
        {
            "config.yaml": HOSTILE_CONFIG,
            "content/mechanism/alpha.md": HOSTILE_A,
            "content/mechanism/beta.md": HOSTILE_B,
            "content/references.yaml": HOSTILE_REFERENCES,
            "content/glossary.yaml": HOSTILE_GLOSSARY,
        }
    )
    result = run_build(root)
    assert result.ok, "\n".join(d.format() for d in result.diagnostics)
    site = root / "site"
    pages = sorted(site.rglob("*.html"))
    assert len(pages) > 8
    for page in pages:
        audit = _PageAudit()
        audit.feed(page.read_text("utf-8"))
        audit.close()
        assert audit.problems == [], page.relative_to(site)
        for block in audit.json_ld:
            json.loads(block)  # still valid JSON after escaping '<'
    article_html = (site / "mechanism/alpha/index.html").read_text("utf-8")
    for number in (201, 205, 206, 207, 208, 209, 210, 212):
        assert f"alert({number})" in article_html, number  # rendered, as text
    beta_html = (site / "mechanism/beta/index.html").read_text("utf-8")
    assert "alert(301)" in beta_html
    import xml.etree.ElementTree as ET

    feed = ET.fromstring((site / "feed.xml").read_bytes())
    titles = [e.text for e in feed.iter("{http://www.w3.org/2005/Atom}title")]
    assert '"><script>alert(201)</script>' in titles


# -- YAML ---------------------------------------------------------------------------------

PAYLOAD = '!!python/object/apply:os.system ["touch {marker}"]'


@pytest.mark.parametrize(
    ("rel", "template", "position"),
    [
        ("content/mechanism/a.md", "---\ntitle: {payload}\nsummary: s\n---\n", "2:8"),
        ("content/references.yaml", "r:\n  title: {payload}\n", "2:10"),
        ("content/glossary.yaml", "- term: {payload}\n  definition: d\n", "1:9"),
    ],
)
def test_yaml_tags_in_content_never_execute(
    make_site, tmp_path: Path, rel: str, template: str, position: str
) -> None:
    marker = tmp_path / "pwned"
    files = {"content/mechanism/b.md": article("B", extra=MECH)}
    files[rel] = template.format(payload=PAYLOAD.format(marker=marker))
    root = make_site(files)
    result = run_cli(root, "check")
    assert result.returncode == 1
    assert f"{rel}:{position}: error: YAML tag '!!python/object/apply:os.system' is not allowed" \
        in result.stderr
    assert not marker.exists()


def test_yaml_tag_in_config_never_executes(make_site, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    root = make_site({"config.yaml": f"title: {PAYLOAD.format(marker=marker)}\nsections: []\n"})
    result = run_cli(root, "check")
    assert result.returncode == 2
    assert "config.yaml:1:8: error: YAML tag '!!python/object/apply:os.system' is not allowed" \
        in result.stderr
    assert not marker.exists()


def test_kbgen_never_calls_an_unsafe_yaml_loader() -> None:
    unsafe = {"load", "load_all", "full_load", "full_load_all", "unsafe_load", "unsafe_load_all"}
    loaders = {"Loader", "FullLoader", "UnsafeLoader", "CLoader", "CFullLoader", "CUnsafeLoader"}
    for source in sorted((REPO / "kbgen").glob("*.py")):
        tree = ast.parse(source.read_text("utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "yaml"
            ):
                assert node.attr not in unsafe | loaders, f"{source.name}: yaml.{node.attr}"


# -- static files ----------------------------------------------------------------------------


def test_static_symlink_leaving_the_project_is_refused_and_not_copied(
    make_site, tmp_path: Path
) -> None:
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("private", "utf-8")
    root = make_site({"content/mechanism/a.md": article("A", extra=MECH)})
    (root / "static" / "secret.txt").symlink_to(secret)
    (root / "static" / "outside-folder").symlink_to(secret.parent)
    inside = root / "static" / "css" / "alias.css"
    inside.symlink_to(root / "static" / "css" / "site.css")
    result = run_build(root)
    assert [d.format() for d in result.diagnostics if d.is_error] == [
        f"static/secret.txt:1:1: error: symlink points outside the project (to '{secret}'); "
        "it is not copied\n  hint: copy the file into the project instead of linking to it"
    ]
    assert not (root / "site").exists()
    (root / "static" / "secret.txt").unlink()
    result = run_build(root)
    assert result.ok
    site = root / "site"
    assert not any(p.name == "secret.txt" for p in site.rglob("*"))
    assert not (site / "static" / "outside-folder").exists()
    copied = (site / "static/css/alias.css").read_bytes()
    assert copied == (root / "static/css/site.css").read_bytes()
    assert not (site / "static/css/alias.css").is_symlink()


# -- sanitizing fragment by fragment -------------------------------------------------------


AFTER = "\n\n## After the HTML\n\nThe rest of the page.\n"


@pytest.mark.parametrize(
    ("raw", "col", "what"),
    [
        ("<p>a <!-- b</p>", 6, "an HTML comment '<!--' that is never closed with '-->'"),
        ("<div>x <script>alert(1)</div>", 8, "a <script> element that is never closed with "
         "</script>"),
        ("<div><math><style>x</div>", 12, "a <style> element that is never closed with </style>"),
    ],
)
@pytest.mark.parametrize("mode", ["sanitize", "allow"])
def test_an_unclosed_comment_or_raw_text_element_is_an_error_at_its_position(
    raw: str, col: int, what: str, mode: str
) -> None:
    markup = convert("Intro.\n\n" + raw + AFTER, raw_html=mode)
    message = f"raw HTML opens {what}; it would hide the rest of the page"
    assert (12, col, message) in messages(markup)
    if raw.startswith("<p>"):  # the fragment ends where its block does: the rest is kept
        assert 'id="after-the-html"' in markup.html and "The rest of the page." in markup.html


@pytest.mark.parametrize(
    "raw",
    [
        "<p>kept <!-- a comment --> too</p>",
        "<div><b>bold</b> <script>alert(1)</script></div>",
        "Inline <b>bold</b>, <math><style>x</style></math> and <!-- c --> text.",
        "Inline <span onclick='x'>unclosed span and <math><style> here.",
    ],
)
def test_sanitizing_a_fragment_never_removes_what_follows_it(raw: str) -> None:
    markup = convert("Intro.\n\n" + raw + AFTER, raw_html="sanitize")
    assert markup.problems == ()
    assert "The rest of the page." in markup.html
    assert [heading.id for heading in markup.toc] == ["after-the-html"]
    assert 'id="after-the-html"' in markup.html
    for gone in ("<script", "alert(1)", "onclick", "<style", "<math", "<!--"):
        assert gone not in markup.html, gone


def test_a_removed_block_leaves_no_empty_paragraph() -> None:
    html = convert("Intro.\n\n<script>alert(1)</script>\n\nEnd.\n", raw_html="sanitize").html
    assert html.split() == ["<p>Intro.</p>", "<p>End.</p>"]


# -- a contributed cache folder ------------------------------------------------------------

HOSTILE_BUILD = """
import json, sys
from pathlib import Path
from kbgen.incremental import Builder
from kbgen.pipeline import BuildOptions
import datetime as dt
result = Builder(Path(sys.argv[1]), BuildOptions(today=dt.date(2026, 11, 21))).build()
print(json.dumps({"ok": result.ok, "mode": result.mode, "converted": result.converted,
                  "errors": [d.format() for d in result.diagnostics]}))
"""


class _Payload:
    """Unpickling (or unmarshalling and running) this creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return exec, (f"open({str(self.marker)!r}, 'w').write('ran')",)


def _forged(path: Path, marker: Path) -> bytes:
    """A file of the right shape for its name whose payload runs code, with a made-up MAC."""
    import marshal
    import pickle

    from jinja2.bccache import bc_magic

    from kbgen.incremental.sealing import MAGIC

    evil = pickle.dumps(_Payload(marker), protocol=2)
    code = marshal.dumps(compile(f"open({str(marker)!r}, 'w').write('ran')", "t", "exec"))
    mac = bytes(32)
    if path.name.startswith("__jinja2_"):  # Jinja2's own format: the checksum is a pickle
        return bc_magic + evil + code
    if path.suffix == ".sealed":
        return MAGIC + mac + path.stem.encode() + b"\0" + bc_magic + evil + code
    if path.parent.name == "state":
        return MAGIC + (32 + len(evil)).to_bytes(8, "big") + mac + evil + mac + evil
    return MAGIC + mac + evil if path.name == "index" else mac + evil  # index; a pack


def _jinja_native_names(root: Path) -> list[Path]:
    """Where Jinja2's FileSystemBytecodeCache would look: predictable from the checkout path."""
    from hashlib import sha1

    names = []
    for template in sorted((root / "templates").rglob("*.html")):
        name = template.relative_to(root / "templates").as_posix()
        key = sha1(f"{name}|{template}".encode()).hexdigest()
        names.append(root / ".kbgen-cache" / "v1" / "jinja" / f"__jinja2_{key}.cache")
    return names


def _plant(path: Path, kind: str, legit: bytes, marker: Path, outside: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "forged":
        path.write_bytes(_forged(path, marker))
    elif kind == "truncated":
        path.write_bytes(legit[: len(legit) // 2] if legit else _forged(path, marker)[:40])
    elif kind == "huge":  # sparse: 2 GiB on disk costs nothing, read it would
        with path.open("wb") as handle:
            handle.write(_forged(path, marker))
            handle.truncate(2 << 30)
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "outside":
        target = outside / f"{len(list(outside.iterdir()))}.bin"
        target.write_bytes(_forged(path, marker))
        path.symlink_to(target)


@pytest.mark.parametrize("kind", ["forged", "truncated", "huge", "fifo", "dev-zero", "outside"])
def test_a_hostile_cache_folder_runs_nothing_and_the_build_is_cold_and_correct(
    make_site, tmp_path: Path, kind: str
) -> None:
    root = make_site({
        "content/mechanism/a.md": article("Alpha", "See [[b]]. Text with *emphasis*.", extra=MECH),
        "content/routes/b.md": article("Beta", "Back to [[a]].",
                                       extra="bioavailability: high"),
    })
    cache = root / ".kbgen-cache"
    assert run_build(root).ok  # a real cache, to learn every file name kbgen reads
    reference = snapshot(root / "site")
    legit = {p: p.read_bytes() for p in cache.rglob("*") if p.is_file()}
    namespaces = {p.parent.name for p in legit if p.parent.parent.name == "v1"}
    assert namespaces == {"markup", "state", "jinja"}
    shutil.rmtree(cache)
    shutil.rmtree(root / "site")
    marker, outside = tmp_path / "payload-ran", tmp_path / "outside"
    outside.mkdir()
    for path in dict.fromkeys([*legit, *_jinja_native_names(root)]):
        _plant(path, kind, legit.get(path, b""), marker, outside)

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", HOSTILE_BUILD, str(root / "config.yaml")],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert not marker.exists(), "a planted cache file ran code"
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["ok"], report["errors"]
    assert report["mode"] == "cold" and report["converted"] == 2
    assert snapshot(root / "site") == reference
