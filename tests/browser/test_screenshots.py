"""Screenshots for review: an article and the pictures of issue #18 (an article's map, the
routes and side-effects charts, the history timeline, the site map), 375 px and 1280 px,
light and dark, into tests/artifacts/ (gitignored). Each is checked for the basics a reader
would notice first."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser

ARTICLE = "/indications/treatment-resistant-depression/"


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [375, 1280])
def test_article_screenshot(browser: Browser, site_url: str, artifacts_dir: Path,
                            width: int, scheme: str) -> None:
    context = browser.new_context(viewport={"width": width, "height": 900},
                                  color_scheme=scheme)
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(site_url + ARTICLE)
        page.wait_for_load_state("load")
        path = artifacts_dir / f"article-{width}-{scheme}.png"
        page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 10_000
        assert not errors, errors
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        channels = [int(c) for c in background[background.index("(") + 1:-1].split(",")[:3]]
        assert (sum(channels) / 3 < 80) == (scheme == "dark"), background
        toc = page.locator(".toc").bounding_box()
        body = page.locator(".article-body").bounding_box()
        assert toc and body
        if width >= 1280:  # the on-page TOC sits beside the text
            assert toc["x"] > body["x"] + body["width"]
        else:  # ...and above it on a phone
            assert toc["y"] < body["y"]
    finally:
        context.close()


#: the pictures of issue #18: an article's knowledge map, the two section charts, the
#: history timeline and the whole-site map
PICTURES = [
    ("map", "/administration/intravenous/", ".knowledge-map"),
    ("routes-chart", "/administration/", ".charts"),
    ("side-effects-chart", "/side-effects/", ".charts"),
    ("timeline", "/safety/history-and-regulation/", "#chart-history"),
    ("site-map", "/map/", ".site-map"),
]


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [375, 1280])
@pytest.mark.parametrize(("name", "route", "selector"), PICTURES)
def test_picture_screenshot(browser: Browser, site_url: str, artifacts_dir: Path,
                            width: int, scheme: str, name: str, route: str,
                            selector: str) -> None:
    """Each picture drawn within the viewport's width, saved for a person to look at."""
    context = browser.new_context(viewport={"width": width, "height": 900},
                                  color_scheme=scheme)
    try:
        page = context.new_page()
        page.goto(site_url + route)
        page.wait_for_load_state("load")
        picture = page.locator(selector).first
        picture.scroll_into_view_if_needed()
        path = artifacts_dir / f"{name}-{width}-{scheme}.png"
        picture.screenshot(path=str(path))
        assert path.stat().st_size > 5_000
        # (the page itself may scroll sideways: the routes intro has a wide Markdown table)
        box = picture.bounding_box()
        assert box and box["width"] <= width
    finally:
        context.close()
