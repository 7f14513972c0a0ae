"""Live reload in headless Chromium: edits appear by themselves, errors show as an overlay.

A full `serve` session runs in this process (watcher, builder loop, threaded server on a free
127.0.0.1 port); the test edits the Markdown on disk like a writer would. Every wait is
bounded (Playwright timeouts), and page errors fail the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from test_serve import ALPHA, BROKEN, MECH, Running, article, first_error, running_session

WAIT_MS = 10_000
LONG_BODY = "\n\n".join(f"Paragraph {n} of a long article about receptors." for n in range(120))


def _alpha(first_line: str) -> str:
    return article("Alpha", f"{first_line}\n\n{LONG_BODY}", extra=MECH)


@pytest.fixture
def running(make_site) -> Iterator[Running]:
    root: Path = make_site({
        ALPHA: _alpha("First version."),
        "content/mechanism/beta.md": article("Beta", "See [[alpha]].", extra=MECH),
    })
    with running_session(root) as session:
        yield session


@pytest.fixture
def page_errors(page: Page) -> Iterator[list[str]]:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield errors
    assert errors == []


def _url(running: Running, path: str) -> str:
    return f"http://127.0.0.1:{running.port}{path}"


def test_saved_edit_appears_without_manual_reload_and_keeps_scroll(
    running: Running, page: Page, page_errors: list[str]
) -> None:
    page.goto(_url(running, "/mechanism/alpha/"))
    expect(page.locator("main")).to_contain_text("First version.")
    page.evaluate("() => { window.kbgenMarker = 1; window.scrollTo(0, 900); }")
    page.wait_for_function("() => Math.abs(window.scrollY - 900) < 2", timeout=WAIT_MS)

    running.write(ALPHA, _alpha("Second version."))
    expect(page.locator("main")).to_contain_text("Second version.", timeout=WAIT_MS)
    assert page.evaluate("() => window.kbgenMarker") is None  # it really reloaded
    page.wait_for_function("() => Math.abs(window.scrollY - 900) < 2", timeout=WAIT_MS)


def test_broken_front_matter_shows_overlay_and_fixing_it_removes_it(
    running: Running, page: Page, page_errors: list[str]
) -> None:
    page.goto(_url(running, "/mechanism/alpha/"))
    expect(page.locator("main")).to_contain_text("First version.")

    running.write(ALPHA, BROKEN)
    expected = first_error(running.root)  # e.g. content/mechanism/alpha.md:3:10: error: ...
    overlay = page.locator("#kbgen-overlay")
    expect(overlay.locator("li").first).to_contain_text(
        f"{expected.location()}: error: {expected.message}", timeout=WAIT_MS
    )
    expect(overlay.locator(".hint").first).to_contain_text(f"hint: {expected.hint}")
    expect(page.locator("main")).to_contain_text("First version.")  # the last good page

    late = page.context.new_page()  # a tab opened while the error stands shows it too
    late.goto(_url(running, "/mechanism/beta/"))
    expect(late.locator("#kbgen-overlay li").first).to_contain_text(expected.location())

    running.write(ALPHA, _alpha("Fixed version."))
    expect(page.locator("main")).to_contain_text("Fixed version.", timeout=WAIT_MS)
    expect(overlay).to_have_count(0)
    expect(late.locator("#kbgen-overlay")).to_have_count(0, timeout=WAIT_MS)
    late.close()


def test_stylesheet_change_is_swapped_in_without_a_reload(
    running: Running, page: Page, page_errors: list[str]
) -> None:
    page.goto(_url(running, "/mechanism/alpha/"))
    page.evaluate("() => { window.kbgenMarker = 1; }")
    css = running.root / "static/css/site.css"
    css.write_text(css.read_text("utf-8") + "\nhtml { --kbgen-probe: 42; }\n", "utf-8")
    page.wait_for_function(
        "() => getComputedStyle(document.documentElement)"
        ".getPropertyValue('--kbgen-probe').trim() === '42'",
        timeout=WAIT_MS,
    )
    assert page.evaluate("() => window.kbgenMarker") == 1  # same document: no reload
    assert page.locator('link[href*="kbgen-epoch="]').count() == 1
