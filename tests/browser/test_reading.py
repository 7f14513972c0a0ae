"""The reading experience in a real browser, on the session's build of the repository site:
search (box, results, filters, keyboard), click paths, dark mode, link previews, the sortable
table, the 360 px layout, print, and what happens without JavaScript or over file://."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Browser, Page, expect

ARTICLE = "/administration/intranasal-esketamine/"
RESULT = ".search-results .result-link"


def _search(page: Page, site_url: str, query: str) -> None:
    page.goto(f"{site_url}/search/?q={query}")
    expect(page.locator(RESULT).first).to_be_visible(timeout=10_000)
    expect(page.locator("#search-status")).to_have_text(re.compile(r"^\d+ results? "))


def _result_count(page: Page) -> int:
    text = page.locator("#search-status").inner_text()
    match = re.match(r"(\d+) results?", text)
    assert match, text
    return int(match[1])


# -- search ------------------------------------------------------------------------------


def test_search_lists_intranasal_esketamine_first_page(page: Page, site_url: str) -> None:
    _search(page, site_url, "esketamine")
    titles = page.locator(RESULT).all_inner_texts()
    assert 1 <= len(titles) <= 10
    assert "Intranasal esketamine" in titles
    # snippets highlight the term and carry no heading anchors or citation numbers
    first = page.locator(".result-excerpt").first
    assert first.locator("mark").count() >= 1
    assert "esketamine" in first.locator("mark").first.inner_text().lower()
    assert "#" not in " ".join(page.locator(".result-excerpt").all_inner_texts())


def test_header_box_slash_key_and_enter_open_the_search_page(page: Page, site_url: str) -> None:
    page.goto(site_url + ARTICLE)
    page.keyboard.press("/")
    expect(page.locator("#search-q")).to_be_focused()
    page.keyboard.type("esketamine")
    page.keyboard.press("Enter")
    page.wait_for_url("**/search/?q=esketamine")
    expect(page.locator(RESULT).first).to_be_visible(timeout=10_000)
    expect(page.locator("#search-page-q")).to_have_value("esketamine")


def test_a_filter_narrows_results(page: Page, site_url: str) -> None:
    _search(page, site_url, "ketamine")
    before = _result_count(page)
    page.get_by_role("checkbox", name=re.compile(r"^Indications")).check()
    expect(page.locator("#search-status")).to_contain_text("filtered")
    after = _result_count(page)
    assert 0 < after < before
    expect(page.locator(RESULT)).to_have_count(min(after, 10))
    sections = page.locator(".result-section").all_inner_texts()
    assert sections and set(sections) == {"Indications"}
    assert "section=Indications" in page.url  # the filter is kept in the address
    page.reload()
    expect(page.get_by_role("checkbox", name=re.compile(r"^Indications"))).to_be_checked()


def test_arrow_keys_and_enter_pick_a_result(page: Page, site_url: str) -> None:
    _search(page, site_url, "esketamine")
    links = page.locator(RESULT)
    second = links.nth(1).get_attribute("href")
    page.locator("#search-page-q").focus()
    page.keyboard.press("ArrowDown")
    expect(links.nth(0)).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(links.nth(1)).to_be_focused()
    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(re.escape(str(second)) + "$"))
    expect(page.locator("h1")).to_have_count(1)


def test_search_from_file_url_explains_http_is_needed(page: Page, built_site: Path) -> None:
    page.goto((built_site / "search" / "index.html").as_uri())
    notice = page.locator("[data-search-notice]")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("served over HTTP")
    expect(notice).to_contain_text("python build.py serve")
    page.goto((built_site / "administration" / "intranasal-esketamine" / "index.html").as_uri())
    page.locator("#search-q").focus()
    expect(page.locator(".search-file-note")).to_contain_text("served over HTTP")


# -- navigation ----------------------------------------------------------------------------


def test_home_section_article_backlink_by_clicking(page: Page, site_url: str) -> None:
    page.goto(site_url + "/")
    page.locator(".section-cards").get_by_role("link", name="Administration routes").click()
    expect(page.locator("h1")).to_have_text("Administration routes")
    page.locator(".page-list").get_by_role("link", name="Intranasal esketamine").click()
    expect(page.locator("h1")).to_have_text("Intranasal esketamine")
    backlink = page.locator(".backlinks a").first
    title = backlink.inner_text()
    backlink.click()
    expect(page.locator("h1")).to_have_text(title)
    # a backlink's page links to the page we came from
    expect(page.locator("main a[href$='intranasal-esketamine/']")).not_to_have_count(0)


# -- theme -------------------------------------------------------------------------------


def _background(page: Page) -> str:
    return str(page.evaluate("getComputedStyle(document.body).backgroundColor"))


def test_dark_mode_choice_survives_a_reload(page: Page, site_url: str) -> None:
    page.emulate_media(color_scheme="light")
    page.goto(site_url + ARTICLE)
    light = _background(page)
    toggle = page.locator(".theme-toggle")
    expect(toggle).to_have_attribute("aria-pressed", "false")
    toggle.click()
    expect(toggle).to_have_attribute("aria-pressed", "true")
    dark = _background(page)
    assert dark != light
    page.reload()
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    assert _background(page) == dark
    expect(page.locator(".theme-toggle")).to_have_attribute("aria-pressed", "true")
    page.locator(".theme-toggle").click()  # and back
    page.reload()
    assert _background(page) == light


def test_theme_follows_the_system_until_chosen(page: Page, site_url: str) -> None:
    page.emulate_media(color_scheme="dark")
    page.goto(site_url + ARTICLE)
    dark = _background(page)
    expect(page.locator(".theme-toggle")).to_have_attribute("aria-pressed", "true")
    page.emulate_media(color_scheme="light")
    assert _background(page) != dark
    expect(page.locator(".theme-toggle")).to_have_attribute("aria-pressed", "false")


# -- link previews -----------------------------------------------------------------------


def test_link_preview_on_hover_and_on_keyboard_focus(page: Page, site_url: str) -> None:
    page.goto(site_url + ARTICLE)
    tip = page.locator("#link-preview")
    body = page.locator(".article-body")
    hovered = body.get_by_role("link", name="Key trials")
    hovered.hover()
    expect(tip).to_be_visible()
    expect(tip.locator("strong")).to_have_text("Key trials")
    expect(tip).to_contain_text("trial")  # the summary
    expect(hovered).to_have_attribute("aria-describedby", "link-preview")
    page.mouse.move(0, 0)
    expect(tip).to_be_hidden()
    focused = body.get_by_role("link", name="Treatment session and monitoring").first
    focused.focus()
    expect(tip).to_be_visible()
    expect(tip.locator("strong")).to_have_text("Treatment session and monitoring")
    page.keyboard.press("Escape")
    expect(tip).to_be_hidden()
    # citations and glossary terms preview too
    body.locator("a.cite-link").first.focus()
    expect(tip.locator("strong")).to_have_text("Reference 1")
    expect(tip).to_contain_text("SPRAVATO")
    body.locator("abbr.term a").first.focus()
    expect(tip).to_contain_text("S-form")


# -- section table -----------------------------------------------------------------------


def test_comparison_table_sorts_and_stays_usable_without_js(
    page: Page, site_url: str, browser: Browser
) -> None:
    page.goto(site_url + "/administration/")
    table = page.locator("table.comparison")
    first_column = table.locator("tbody th")
    original = first_column.all_inner_texts()
    header = table.get_by_role("button", name=re.compile("Bioavailability"))
    header.click()
    expect(table.locator("thead th").nth(1)).to_have_attribute("aria-sort", "ascending")
    values = [float(v) for v in table.locator("tbody td:nth-of-type(1)").evaluate_all(
        "cells => cells.map(c => c.dataset.sort).filter(v => v !== '')")]
    assert values == sorted(values) and len(values) >= 3
    assert first_column.all_inner_texts() != original
    header.click()
    expect(table.locator("thead th").nth(1)).to_have_attribute("aria-sort", "descending")
    context = browser.new_context(java_script_enabled=False)
    try:
        plain = context.new_page()
        plain.goto(site_url + "/administration/")
        assert plain.locator("table.comparison tbody th").all_inner_texts() == original
        assert plain.locator("table.comparison button").count() == 0
    finally:
        context.close()


# -- without JavaScript, phones, print -------------------------------------------------------


def test_article_reads_fully_without_javascript(browser: Browser, site_url: str) -> None:
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(site_url + ARTICLE)
        expect(page.locator(".infobox")).to_contain_text("Bioavailability")
        expect(page.locator(".toc")).to_contain_text("Approvals")
        expect(page.locator(".references li").first).to_be_visible()
        expect(page.locator(".disclaimer-box")).to_contain_text("not advice")
        expect(page.locator(".theme-toggle")).to_be_hidden()  # it would do nothing
        page.locator(".site-nav").get_by_role("link", name="Oral ketamine").click()
        expect(page.locator("h1")).to_have_text("Oral ketamine")
    finally:
        context.close()


def test_phone_layout_at_360px_has_no_sideways_scrolling(page: Page, site_url: str) -> None:
    page.set_viewport_size({"width": 360, "height": 740})
    for path in (ARTICLE, "/administration/", "/", "/search/?q=ketamine", "/glossary/",
                 "/bibliography/", "/evidence/common-misconceptions/"):
        page.goto(site_url + path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 360, f"{path} is {width}px wide"
    page.goto(site_url + ARTICLE)
    # the article comes first; the section navigation is one tap away
    h1_top = page.locator("h1").bounding_box()
    nav_top = page.locator(".site-nav").bounding_box()
    assert h1_top and nav_top and h1_top["y"] < nav_top["y"]
    jump = page.locator(".nav-jump")
    expect(jump).to_be_visible()
    jump.click()
    assert page.url.endswith("#site-nav")


def test_print_hides_navigation_and_prints_addresses(page: Page, site_url: str) -> None:
    page.goto(site_url + ARTICLE)
    page.emulate_media(media="print")
    for selector in (".site-header", ".site-nav", ".toc", ".prev-next"):
        expect(page.locator(selector)).to_be_hidden()
    expect(page.locator(".references")).to_be_visible()
    after = page.locator(".references a.ref-doi").first.evaluate(
        "a => getComputedStyle(a, '::after').content")
    assert "https://doi.org/" in after
    page.evaluate("window.dispatchEvent(new Event('beforeprint'))")
    internal = page.locator(".article-body a[data-print-href]").first
    assert (internal.get_attribute("data-print-href") or "").startswith(site_url + "/")
