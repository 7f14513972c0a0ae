"""Publishing: a CI deploy build on a fresh clone with a restored cache, and sub-path hosting.

The deploy simulation is what .github/workflows/pages.yml does on a new runner: check out the
project (every file gets a new mtime), restore `.kbgen-cache/` from the previous run, carry the
cache key over (KBGEN_CACHE_KEY from a secret, or the restored key file), and build.
"""

from __future__ import annotations

import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from conftest import MINIMAL_CONFIG, snapshot
from test_cache_key import SECRET, build_cli
from test_parallel import many_pages

PAGES = 24
CONVERSIONS = re.compile(r"(\d+) Markdown conversions")


def conversions(stderr: str) -> int:
    found = CONVERSIONS.search(stderr)
    assert found is not None, stderr
    return int(found[1])


def fresh_clone(project: Path, target: Path) -> Path:
    """The project's files as a checkout gets them: copied (new mtimes), without the ignored
    output and cache folders."""
    for path in sorted(project.rglob("*")):
        rel = path.relative_to(project)
        if rel.parts[0] in ("site", ".kbgen-cache") or not path.is_file():
            continue
        destination = target / rel
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(path.read_bytes())
    return target


@pytest.mark.parametrize(
    "carried", ["KBGEN_CACHE_KEY", "restored key file", "nothing"], ids=lambda s: s.split()[0]
)
def test_fresh_clone_with_restored_cache_reuses_every_conversion(
    make_site, tmp_path: Path, carried: str
) -> None:
    root = make_site(many_pages(PAGES))
    runner_one = {"XDG_CACHE_HOME": str(tmp_path / "runner-1-cache")}
    runner_two = {"XDG_CACHE_HOME": str(tmp_path / "runner-2-cache")}
    if carried == "KBGEN_CACHE_KEY":
        runner_one["KBGEN_CACHE_KEY"] = runner_two["KBGEN_CACHE_KEY"] = SECRET
    cold = build_cli(root, runner_one, "--verbose", "--jobs", "1")
    assert cold.returncode == 0, cold.stderr
    assert conversions(cold.stderr) == PAGES
    if carried == "restored key file":
        shutil.copytree(tmp_path / "runner-1-cache", tmp_path / "runner-2-cache")
    clone = fresh_clone(root, tmp_path / "clone")
    shutil.copytree(root / ".kbgen-cache", clone / ".kbgen-cache")  # the restored cache
    warm = build_cli(clone, runner_two, "--verbose", "--jobs", "1")
    assert warm.returncode == 0, warm.stderr
    # The output is the cold build's, byte for byte, whatever the cache held.
    assert snapshot(clone / "site") == snapshot(root / "site")
    if carried == "nothing":  # a new runner's own key: the restored entries are not trusted
        assert conversions(warm.stderr) == PAGES
    else:
        assert conversions(warm.stderr) == 0


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str]] = []  #: (tag attribute, value)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value and (name in ("href", "src") or (tag == "meta" and name == "content"
                                                      and "://" in value)):
                self.urls.append((f"{tag} {name}", value))


def test_site_works_from_a_sub_path(make_site, tmp_path: Path) -> None:
    """Served at https://example.org/kb/: every link is relative (404.html's start with
    base_url's path, as it is served at any missing address), so each one resolves inside
    /kb/ to a file the build wrote; only base_url-derived tags (canonical, Open Graph) are
    absolute, and they point below base_url."""
    base = "https://example.org/kb/"
    config = MINIMAL_CONFIG.replace("search: false", f"search: false\nbase_url: {base}")
    root = make_site(many_pages(6), config=config)
    done = build_cli(root, {"XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr
    site = root / "site"
    pages = sorted(site.rglob("*.html"))
    assert len(pages) > 6
    checked = 0
    for page in pages:
        rel = page.relative_to(site).as_posix()
        here = urljoin(base, rel)
        parser = _Links()
        parser.feed(page.read_text("utf-8"))
        for where, url in parser.urls:
            if url.startswith(("mailto:", "data:", "#")) or url.startswith("https://doi.org/"):
                continue
            if rel == "404.html":  # served at any missing address: links from base_url's path
                assert not url.startswith("/") or url.startswith("/kb/"), f"{where}={url!r}"
            else:
                assert not url.startswith("/"), f"{rel}: root-relative {where}={url!r}"
            if "://" in url:
                assert url.startswith(base) or urlsplit(url).netloc != "example.org", (
                    f"{rel}: {where}={url!r} is outside base_url"
                )
                if not url.startswith(base):
                    continue  # an external link (a reference's source)
            target = urlsplit(urljoin(here, url)).path
            assert target.startswith("/kb/"), f"{rel}: {where}={url!r} leaves /kb/"
            local = site / target.removeprefix("/kb/")
            assert local.is_file() or (local / "index.html").is_file(), (
                f"{rel}: {where}={url!r} -> {target} is not in site/"
            )
            checked += 1
    assert checked > 100
    sitemap = (site / "sitemap.xml").read_text("utf-8")
    assert f"<loc>{base}mechanism/page-0/</loc>" in sitemap
