"""A build killed at any instant leaves the complete old site or the complete new one.

50 builds of a few-hundred-page site are SIGKILLed at random moments (the whole process
group, workers included, as the OOM killer or a power cut would). After every kill the
output folder must equal, byte for byte, a snapshot of a clean build of the version it held
before or of the version being built; and the next normal build must leave no staging
debris behind. Half the runs change config.yaml (a cold build), half change only page
bodies (a warm build that renders only what changed); both must reach the output folder only
through the staging folder and one renameat2(RENAME_EXCHANGE).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, snapshot

from kbgen.incremental import Builder
from kbgen.pipeline import BuildOptions

PAGES = 200
RUNS = 50
SEED = 20261121

CONFIG = """\
title: {title}
search: false
review_interval_days: 36500
sections:
  - id: mechanism
    title: Mechanism
  - id: routes
    title: Routes
"""


def page_text(number: int, variant: str) -> str:
    other = (number + 1) % PAGES
    section_links = f"See [[page-{other}]] and [[page-{(number + 7) % PAGES}]]."
    paragraphs = "\n\n".join(
        f"Paragraph {k} of page {number}, version {variant}: ketamine acts on the NMDA "
        "receptor, and the evidence for its rapid effect is reviewed here in some detail."
        for k in range(12)
    )
    return (
        f"---\ntitle: Page {number}\nsummary: Generated page {number}.\n"
        f"last_reviewed: 2026-01-01\ntags: [t{number % 10}]\n---\n"
        f"{section_links}\n\n## Section {variant}\n\n{paragraphs}\n"
    )


def write_version(root: Path, title: str, body: str) -> None:
    """Sources for one version: `title` goes into config.yaml, `body` into every page."""
    (root / "config.yaml").write_text(CONFIG.format(title=title), "utf-8")
    for number in range(PAGES):
        section = "mechanism" if number % 2 else "routes"
        path = root / "content" / section / f"page-{number}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        text = page_text(number, body)
        if not path.exists() or path.read_text("utf-8") != text:
            path.write_text(text, "utf-8")


def new_project(root: Path) -> None:
    root.mkdir()
    shutil.copytree(REPO / "templates", root / "templates")
    shutil.copytree(REPO / "static", root / "static")


def clean_build(tmp_path: Path, title: str, body: str) -> dict[str, bytes]:
    """The reference output of one version, built from scratch elsewhere."""
    root = tmp_path / f"reference-{title}-{body}".replace(" ", "_")
    new_project(root)
    write_version(root, title, body)
    output = root / "site"
    result = Builder(root / "config.yaml", BuildOptions(search=False, output=output)).build()
    assert result.ok, [d.format() for d in result.diagnostics]
    return snapshot(output)


def start_build(root: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, str(REPO / "build.py"), "build", "--quiet"],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: the kill reaches worker processes
    )


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the build's whole process group (a no-op if it already finished)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.communicate(timeout=60)


def debris(root: Path) -> list[str]:
    """Leftovers of interrupted builds: staging/old folders and temporary files."""
    found = [p.name for p in root.iterdir() if p.name.startswith((".site.staging-", ".site.old-"))]
    found += [p.name for p in (root / "site").rglob("*") if p.name.endswith(".tmp")]
    return found


@pytest.mark.slow
def test_sigkill_at_random_moments_never_leaves_a_mixed_site(tmp_path: Path) -> None:
    versions = {
        (title, body): clean_build(tmp_path, title, body)
        for title, body in (("Atomic A", "one"), ("Atomic B", "one"), ("Atomic B", "two"))
    }
    root = tmp_path / "project"
    new_project(root)
    title, body = "Atomic A", "one"
    write_version(root, title, body)
    started = time.perf_counter()
    first = start_build(root)
    assert first.wait(timeout=120) == 0, first.stderr.read() if first.stderr else ""
    duration = time.perf_counter() - started
    output = root / "site"
    held = (title, body)
    assert snapshot(output) == versions[held]

    rng = random.Random(SEED)
    outcomes = {"old": 0, "new": 0}
    for run in range(RUNS):
        # alternate between a cold build (config.yaml changes) and a warm one (bodies change)
        if run % 2 == 0:
            target = ("Atomic B", "one") if held[0] == "Atomic A" else ("Atomic A", "one")
        else:
            target = ("Atomic B", "two") if held == ("Atomic B", "one") else ("Atomic B", "one")
        if target not in versions:  # pragma: no cover - the table above covers all targets
            versions[target] = clean_build(tmp_path, *target)
        write_version(root, *target)
        process = start_build(root)
        time.sleep(rng.uniform(0.05, duration * 1.1))
        kill_group(process)
        now = snapshot(output)
        assert now in (versions[held], versions[target]), (
            f"run {run}: the output is neither the old nor the new site; "
            f"{sorted(set(now) ^ set(versions[target]))[:5]}"
        )
        outcomes["old" if now == versions[held] and now != versions[target] else "new"] += 1
        held = target if now == versions[target] else held

    final = start_build(root)
    _, stderr = final.communicate(timeout=120)
    assert final.returncode == 0, stderr.decode()
    assert snapshot(output) == versions[target]
    assert debris(root) == []
    assert outcomes["old"] > 0 and outcomes["new"] > 0, outcomes  # kills landed on both sides
