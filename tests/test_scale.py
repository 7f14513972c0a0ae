"""Pathological pages: the cost of one page is bounded (linear, or near it) in its size.

Each case builds a tiny site holding one such page in a fresh process and checks the CPU
time and peak memory of that build against generous bounds (the issue's numbers: 50,000
links in one paragraph were killed at 600 s and 15.9 GB; 100,000 unclosed `[` ran for over
10 minutes). These are not speed targets (those live in benchmarks/): a quadratic pass
misses the bounds by orders of magnitude, a linear one meets them several times over.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, article

MECH = "status: established"
SECONDS = 10.0
MEGABYTES = 1024

# CPU seconds of the build (one process, jobs=1), not wall time: the bound is about the
# work, and this machine is shared. Peak memory is VmHWM, the high-water mark of this
# process's own address space (ru_maxrss would include pytest's, inherited over fork).
MEASURED_BUILD = """
import json, re, sys, time
import datetime as dt
from pathlib import Path
from kbgen.incremental import Builder
from kbgen.pipeline import BuildOptions
started, wall = time.process_time(), time.perf_counter()
result = Builder(Path(sys.argv[1]), BuildOptions(today=dt.date(2026, 11, 21), jobs=1)).build()
status = Path("/proc/self/status").read_text()
print(json.dumps({
    "seconds": time.process_time() - started,
    "wall": time.perf_counter() - wall,
    "megabytes": int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1)) / 1024,
    "errors": [d.format() for d in result.diagnostics if d.severity.value == "error"],
}))
"""


def measured_build(root: Path) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", MEASURED_BUILD, str(root / "config.yaml")],
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])  # type: ignore[no-any-return]


LINKS = " ".join(f"[[b]] [x{n}](b.md) [e](https://e.org/{n})" for n in range(17_000))
BRACKETS = "\n\n".join(["[" * 100_000, "![" * 16_000, "[" * 8_000 + "]" * 8_000,
                        "[[" * 16_000, "[@" * 16_000])


@pytest.mark.parametrize(("name", "body"), [("links", LINKS), ("brackets", BRACKETS)],
                         ids=["51000-links-in-one-paragraph", "unclosed-and-nested-brackets"])
def test_a_pathological_page_builds_in_bounded_time_and_memory(
    make_site, name: str, body: str
) -> None:
    root = make_site({
        "content/mechanism/a.md": article("Alpha", body, extra=MECH),
        "content/mechanism/b.md": article("Beta", "Back to [[a]].", extra=MECH),
    })
    report = measured_build(root)
    print(name, report)  # seen with -s: the numbers behind the bounds
    assert report["errors"] == []
    assert report["seconds"] < SECONDS, report  # type: ignore[operator]
    assert report["megabytes"] < MEGABYTES, report  # type: ignore[operator]
    page = (root / "site" / "mechanism" / "a" / "index.html").read_text("utf-8")
    assert page.count('href="../b/"') >= (34_000 if name == "links" else 0)
