"""axe-core in headless Chromium: no serious or critical violation on every kind of page,
in light and in dark mode (the site's own colours, as a reader with either system setting
sees them)."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

AXE = Path(__file__).resolve().parents[1] / "node_modules" / "axe-core" / "axe.min.js"
PAGES = {
    "home": "/",
    "section": "/administration/",
    "side-effects": "/side-effects/",  # the trial-rate chart
    "article": "/administration/intranasal-esketamine/",
    "indication": "/indications/treatment-resistant-depression/",
    "history": "/safety/history-and-regulation/",  # the timeline chart
    "site-map": "/map/",  # the whole link graph
    "tag": "/tags/esketamine/",
    "glossary": "/glossary/",
    "bibliography": "/bibliography/",
    "search": "/search/?q=esketamine",
}
RULES = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("name", list(PAGES))
def test_no_serious_or_critical_violations(page: Page, site_url: str, name: str,
                                           scheme: str) -> None:
    assert AXE.is_file(), "run: npm ci --prefix tests"
    page.emulate_media(color_scheme=scheme)
    page.goto(site_url + PAGES[name])
    if name == "search":  # check the page with its results and filters showing
        expect(page.locator(".search-results .result-link").first).to_be_visible(timeout=10_000)
        expect(page.locator("#search-filters")).to_be_visible()
    assert page.evaluate("getComputedStyle(document.documentElement).colorScheme") == scheme
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", RULES)
    assert result["passes"], "axe ran no checks"
    bad = [v for v in result["violations"] if v["impact"] in ("serious", "critical")]
    report = "\n".join(
        f"[{v['impact']}] {v['id']}: {v['help']}\n    "
        + "\n    ".join(str(n["target"]) + " " + n["html"][:160] for n in v["nodes"][:5])
        for v in bad
    )
    assert not bad, f"{name} ({scheme}):\n{report}"
