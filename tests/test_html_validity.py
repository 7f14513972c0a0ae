"""The Nu HTML Checker (vnu.jar from npm) over the whole built repository site: zero errors.

One JVM run checks every page (about 5 s). A deliberately broken canary page is checked in
the same run, so the test fails if vnu checked nothing (it exits 0 on an empty folder).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

VNU = Path(__file__).resolve().parent / "node_modules" / "vnu-jar" / "build" / "dist" / "vnu.jar"
CANARY = ('<!DOCTYPE html><html lang="en"><head><title>canary</title></head>'
          "<body><p><b>unclosed</p></body></html>\n")


@pytest.mark.slow
def test_built_site_has_no_html_errors(built_site: Path, tmp_path: Path) -> None:
    java = shutil.which("java")
    assert java, "Java is needed for the Nu HTML checker (apt-get install default-jre-headless)"
    assert VNU.is_file(), "run: npm ci --prefix tests"
    pages = [p for p in built_site.rglob("*.html")]
    assert len(pages) >= 80, "the repository site should have been built"
    canary = tmp_path / "canary" / "bad.html"
    canary.parent.mkdir()
    canary.write_text(CANARY, "utf-8")
    process = subprocess.run(
        [java, "-jar", str(VNU), "--format", "json", "--stdout", "--skip-non-html",
         "--errors-only", str(built_site), str(canary.parent)],
        capture_output=True, text=True, timeout=300, check=False)
    messages = json.loads(process.stdout)["messages"]
    problems = [m for m in messages if m["type"] in ("error", "non-document-error")]
    canary_errors = [m for m in problems if m.get("url", "").endswith("/canary/bad.html")]
    assert canary_errors, "vnu found nothing in the canary: no files checked?\n" + process.stderr
    site_errors = [m for m in problems if m not in canary_errors]
    report = "\n".join(
        f"{m.get('url', '?').split(str(built_site))[-1]}:{m.get('lastLine', '?')}: {m['message']}"
        for m in site_errors[:40])
    assert not site_errors, f"{len(site_errors)} HTML error(s) in {len(pages)} pages:\n{report}"
