"""The invalid-input corpus: every user mistake gets a clear error and loses nothing.

Each folder in tests/fixtures/invalid/<case>/ is a tiny project (config.yaml + content/, and
templates/ only when the case is about templates) plus:

* `expected.txt`: first line `exit: N`, then the exact diagnostics `python build.py check`
  prints (`{root}`, `{home}` and `{today}` stand for the project folder, the home folder and
  today's date);
* `recipe.txt` (optional): inputs git cannot hold or that are too big to commit, made on the
  fly (symlink loops, FIFOs, unreadable files, a 10 MB article, 10,000-level nesting);
* `output.txt` (optional, for cases that must build): `site-file: text it must contain`.

For every case the real CLI runs twice on a project whose `site/` holds a previous good
build: `check` must print exactly the expected diagnostics, and `build` must print them too,
exit with the same code, never show a traceback, and leave the previous site byte-identical.
Cases with `exit: 0` (BOM, CRLF, Norway values, a 10 MB article) must build instead.

After a deliberate change of wording, `KBGEN_UPDATE_CORPUS=1 pytest tests/test_invalid_corpus.py`
rewrites the expected.txt files; review the diff like code.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import functools
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import REPO, TODAY, snapshot

from kbgen.incremental import Builder
from kbgen.pipeline import BuildOptions

CORPUS = Path(__file__).resolve().parent / "fixtures" / "invalid"
CASES = sorted(p.name for p in CORPUS.iterdir() if p.is_dir())
META_FILES = ("expected.txt", "recipe.txt", "output.txt")
UPDATE = os.environ.get("KBGEN_UPDATE_CORPUS") == "1"

# The good project built before each case replaces config.yaml and content/.
BASELINE_CONFIG = """\
title: Baseline
search: false
sections:
  - id: mechanism
    title: Mechanism
"""
BASELINE_PAGE = """\
---
title: {title}
summary: A page of the previous, good build.
last_reviewed: 2026-01-01
---
See [[{other}]].
"""
POSITION_RE = re.compile(r"^(?:\S.*?):\d+:\d+: (?:error|warning): \S")
UNPOSITIONED_RE = re.compile(r"^(?:config\.yaml|command line): error: \S")


@dataclass(frozen=True)
class Expectation:
    exit_code: int
    diagnostics: str
    outputs: tuple[tuple[str, str], ...] = ()


@dataclass
class Layout:
    home: Path
    root: Path
    max_rss_mb: int | None = None
    without_read_permission: bool = False
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    def substitute(self, text: str) -> str:
        return (
            text.replace("{root}", str(self.root))
            .replace("{home}", str(self.home))
            .replace("{today}", dt.date.today().isoformat())
        )

    def generalise(self, text: str) -> str:
        """The inverse of substitute, for recording expected.txt."""
        return (
            text.replace(str(self.root), "{root}")
            .replace(str(self.home), "{home}")
            .replace(dt.date.today().isoformat(), "{today}")
        )


def read_expectation(case: Path) -> Expectation:
    lines = (case / "expected.txt").read_text("utf-8").splitlines()
    match = re.fullmatch(r"exit: (\d)", lines[0]) if lines else None
    assert match, f"{case.name}/expected.txt must start with 'exit: N'"
    outputs: list[tuple[str, str]] = []
    if (case / "output.txt").exists():
        for line in (case / "output.txt").read_text("utf-8").splitlines():
            rel, _, needle = line.partition(": ")
            outputs.append((rel, needle))
    return Expectation(int(match[1]), "\n".join(lines[1:]), tuple(outputs))


# -- building the project ---------------------------------------------------------------------


def build_baseline(root: Path) -> None:
    """A good project with a built site/: what the user had before the mistake."""
    root.mkdir(parents=True)
    shutil.copytree(REPO / "templates", root / "templates")
    shutil.copytree(REPO / "static", root / "static")
    (root / "config.yaml").write_text(BASELINE_CONFIG, "utf-8")
    for slug, other in (("one", "two"), ("two", "one")):
        page = root / "content" / "mechanism" / f"{slug}.md"
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(BASELINE_PAGE.format(title=slug.title(), other=other), "utf-8")
    baseline = Builder(root / "config.yaml", BuildOptions(today=TODAY, search=False)).build()
    assert baseline.ok, [d.format() for d in baseline.diagnostics]


def prepare(case: Path, home: Path, baseline: Path, name: str) -> Layout:
    """A copy of the baseline project with the case's files and recipe applied."""
    root = home / "work" / name
    shutil.copytree(baseline, root, symlinks=True)
    layout = Layout(home, root)
    shutil.rmtree(root / "content")
    (root / "config.yaml").unlink()
    for source in sorted(case.rglob("*")):
        rel = source.relative_to(case)
        if rel.as_posix() in META_FILES or source.is_dir():
            continue
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    (root / "content").mkdir(exist_ok=True)
    if (case / "recipe.txt").exists():
        for line in (case / "recipe.txt").read_text("utf-8").splitlines():
            if line.strip() and not line.startswith("#"):
                apply_step(layout, shlex.split(line))
    return layout


def _unescape(text: str) -> str:
    return text.encode("utf-8").decode("unicode_escape")


def _append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text)


def _append_prose(path: Path, size: int) -> None:
    """Numbered paragraphs of plain prose until the file has `size` bytes."""
    with path.open("a", encoding="utf-8") as handle:
        number = 0
        while handle.tell() < size:
            number += 1
            handle.write(
                f"\n\nParagraph {number} of the generated article. Ketamine blocks the NMDA "
                "receptor; the *surge* of glutamate that follows is one leading hypothesis "
                "for its rapid antidepressant effect, and **AMPA** signalling another."
            )
            if number % 500 == 0:
                handle.write(f"\n\n## Part {number // 500}\n")


def apply_step(layout: Layout, words: list[str]) -> None:
    """One recipe line: make an input that git cannot hold or that is too big to commit."""
    command, args = words[0], [layout.substitute(w) for w in words[1:]]
    root = layout.root
    if command == "symlink":  # symlink PATH TARGET
        (root / args[0]).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(args[1], root / args[0])
    elif command == "fifo":  # fifo PATH: a named pipe; opening it to read would block
        os.mkfifo(root / args[0])
    elif command == "mkdir":
        (root / args[0]).mkdir(parents=True)
    elif command == "write":  # write PATH TEXT
        (root / args[0]).parent.mkdir(parents=True, exist_ok=True)
        (root / args[0]).write_text(_unescape(args[1]), "utf-8")
    elif command == "move":
        (root / args[1]).parent.mkdir(parents=True, exist_ok=True)
        os.rename(root / args[0], root / args[1])
    elif command == "append":  # append PATH COUNT TEXT
        _append(root / args[0], _unescape(args[2]) * int(args[1]))
    elif command == "insert-after":  # insert-after PATH MARKER COUNT TEXT
        path = root / args[0]
        text = path.read_text("utf-8")
        head, marker, tail = text.partition(args[1])
        path.write_text(head + marker + _unescape(args[3]) * int(args[2]) + tail, "utf-8")
    elif command == "append-prose":  # append-prose PATH BYTES
        _append_prose(root / args[0], int(args[1]))
    elif command == "append-indented-list":  # append-indented-list PATH LEVELS
        levels = range(int(args[1]))
        _append(root / args[0], "\n" + "".join("    " * i + "- level\n" for i in levels))
    elif command == "unreadable":  # unreadable PATH: no read permission, honoured even as root
        if os.geteuid() == 0 and not can_drop_read_override():
            pytest.skip("running as root without CAP_SETPCAP: root would read the file anyway")
        path = root / args[0]
        path.chmod(0)
        layout.without_read_permission = True
        layout.cleanups.append(lambda: path.chmod(0o644))
    elif command == "max-rss-mb":
        layout.max_rss_mb = int(args[0])
    else:  # pragma: no cover - a typo in a recipe
        raise AssertionError(f"unknown recipe command {command!r}")


# -- running the CLI ---------------------------------------------------------------------------

_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH = 1, 2


def _drop_file_read_override() -> None:
    """In the child, before exec: root loses the power to read files without permission.

    Tests run as root in CI, and root ignores `chmod 000`. Dropping CAP_DAC_OVERRIDE and
    CAP_DAC_READ_SEARCH from the bounding set makes the permission bits apply to the build
    exactly as they would to a normal user.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if libc.prctl(_PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


@functools.cache
def can_drop_read_override() -> bool:
    """Whether this (root) process may drop the capabilities in a child (needs CAP_SETPCAP)."""
    try:
        subprocess.run([sys.executable, "-c", "pass"], preexec_fn=_drop_file_read_override,
                       check=True, timeout=60)
    except (subprocess.SubprocessError, OSError):
        return False
    return True


def start_kbgen(layout: Layout, *args: str) -> subprocess.Popen[str]:
    """Start `python build.py ARGS` in the project, as a user runs it (HOME: the fake home).

    A wrapper reports the process's peak memory on its last stderr line, for the cases that
    bound it.
    """
    env = {**os.environ, "PYTHONPATH": str(REPO), "HOME": str(layout.home)}
    program = (
        "import resource, runpy, sys\n"
        f"sys.argv = [{str(REPO / 'build.py')!r}, *sys.argv[1:]]\n"
        "try:\n"
        "    runpy.run_path(sys.argv[0], run_name='__main__')\n"
        "finally:\n"
        "    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024\n"
        "    print(f'peak-rss-mb: {peak}', file=sys.stderr)\n"
    )
    preexec = (
        _drop_file_read_override
        if layout.without_read_permission and os.geteuid() == 0
        else None
    )
    return subprocess.Popen(
        [sys.executable, "-c", program, *args],
        cwd=layout.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=preexec,
    )


def finish(process: subprocess.Popen[str]) -> tuple[int, str]:
    """Wait for a started CLI run (bounded); its exit code and stderr."""
    try:
        _, stderr = process.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    return process.returncode, stderr


def split_stderr(stderr: str) -> tuple[str, list[str], int]:
    """(diagnostics, summary lines, peak RSS in MB) from the CLI's stderr."""
    diagnostics, summary, peak = [], [], 0
    for line in stderr.splitlines():
        if line.startswith("peak-rss-mb: "):
            peak = int(line.split()[1])
        elif line.startswith(("Check failed:", "Build failed:")):
            summary.append(line)
        else:
            diagnostics.append(line)
    return "\n".join(diagnostics), summary, peak


def assert_compiler_format(diagnostics: str) -> None:
    """Every problem is `path:line:col: error: message` followed by a hint line."""
    lines = diagnostics.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("  hint: "):
            continue
        assert POSITION_RE.match(line) or UNPOSITIONED_RE.match(line), line
        if ": error: " in line:
            following = lines[index + 1] if index + 1 < len(lines) else ""
            assert following.startswith("  hint: ") and len(following) > 10, line


# -- the test ----------------------------------------------------------------------------------


def test_corpus_has_at_least_45_cases_each_with_an_expectation() -> None:
    assert len(CASES) >= 45
    for name in CASES:
        assert (CORPUS / name / "expected.txt").is_file(), name
        assert (CORPUS / name / "config.yaml").is_file() or name == "config-missing-file", name


@pytest.mark.parametrize("name", CASES)
def test_invalid_input_gets_exact_diagnostics_and_leaves_previous_site(
    name: str, tmp_path: Path
) -> None:
    case = CORPUS / name
    home = tmp_path / "home"
    build_baseline(tmp_path / "baseline")
    # `check` and `build` run at the same time, each in its own copy of the project.
    checking = prepare(case, home, tmp_path / "baseline", "project")
    building = prepare(case, home, tmp_path / "baseline", "project-build")
    try:
        _check_case(case, checking, building)
    finally:
        for cleanup in checking.cleanups + building.cleanups:
            cleanup()


def _check_case(case: Path, checking: Layout, building: Layout) -> None:
    site = building.root / "site"
    before = snapshot(site)
    check_run, build_run = start_kbgen(checking, "check"), start_kbgen(building, "build")
    check_code, check_stderr = finish(check_run)
    build_code, build_stderr = finish(build_run)

    diagnostics, summary, _ = split_stderr(check_stderr)
    assert "Traceback" not in check_stderr, check_stderr
    if UPDATE:
        recorded = f"exit: {check_code}\n{checking.generalise(diagnostics)}".rstrip()
        (case / "expected.txt").write_text(recorded + "\n", "utf-8")
    expected = read_expectation(case)
    assert check_code == expected.exit_code, check_stderr
    assert diagnostics == checking.substitute(expected.diagnostics)
    assert_compiler_format(diagnostics)

    build_diagnostics, build_summary, peak_mb = split_stderr(build_stderr)
    assert "Traceback" not in build_stderr, build_stderr
    assert build_code == expected.exit_code, build_stderr
    assert build_diagnostics == building.substitute(expected.diagnostics)
    if expected.exit_code == 0:
        assert (site / ".kbgen-site").is_file()
        for rel, needle in expected.outputs:
            assert needle in (site / rel).read_text("utf-8"), (rel, needle)
        if building.max_rss_mb is not None:
            assert peak_mb < building.max_rss_mb, f"peak RSS {peak_mb} MB"
        return
    if expected.exit_code == 1:
        assert summary and summary[0].startswith("Check failed:")
        assert build_summary and "nothing was written" in build_summary[0]
    assert snapshot(site) == before, "a failed build changed the previous site"
    leftovers = [p.name for p in site.parent.iterdir() if p.name.startswith(".site.")]
    assert leftovers == [], leftovers
