"""Privacy: every page of the built site, loaded in the browser, requests nothing but
127.0.0.1 (no fonts, scripts, styles, analytics or CDNs from elsewhere), and nothing it
requests is missing."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import Browser, Request, Response, expect

LOCAL_SCHEMES = ("data", "blob", "about")


def test_no_page_requests_anything_but_127_0_0_1(browser: Browser, built_site: Path,
                                                 site_url: str) -> None:
    pages = sorted(p.relative_to(built_site).as_posix() for p in built_site.rglob("*.html")
                   if p.relative_to(built_site).parts[0] != "pagefind")
    assert len(pages) >= 80, pages  # the repository site: every page, not a sample
    requests: list[str] = []
    failures: list[str] = []
    context = browser.new_context()

    def on_request(request: Request) -> None:
        requests.append(request.url)

    def on_response(response: Response) -> None:
        if response.status >= 400 and not response.url.endswith("/404.html"):
            failures.append(f"{response.status} {response.url}")

    context.on("request", on_request)
    context.on("response", on_response)
    try:
        page = context.new_page()
        for rel in pages:
            page.goto(f"{site_url}/{rel}", wait_until="load")
        # what only interaction loads: the search index and the link-preview data
        page.goto(f"{site_url}/search/?q=esketamine&section=Indications")
        expect(page.locator(".search-results .result-link").first).to_be_visible(timeout=10_000)
        page.goto(f"{site_url}/administration/intranasal-esketamine/")
        page.locator(".article-body").get_by_role("link", name="Key trials").hover()
        expect(page.locator("#link-preview")).to_be_visible()
    finally:
        context.close()
    outside = sorted({url for url in requests
                      if urlsplit(url).scheme not in LOCAL_SCHEMES
                      and urlsplit(url).hostname != "127.0.0.1"})
    assert not outside, outside
    assert any("/pagefind/" in url for url in requests)  # the interactions really ran
    assert any(url.endswith("/previews.json") for url in requests)
    assert len(requests) > len(pages)
    assert not failures, failures
