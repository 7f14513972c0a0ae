"""Shared fixtures: tiny sites in tmp_path, built through the real pipeline and CLI."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from kbgen.incremental import Builder
from kbgen.pipeline import BuildOptions, BuildResult

REPO = Path(__file__).resolve().parent.parent
TODAY = dt.date(2026, 12, 2)

MINIMAL_CONFIG = """\
title: Test KB
description: A tiny site for tests.
search: false
sections:
  - id: mechanism
    title: Mechanism
    description: How it works.
    fields:
      status:
        label: Status
        type: enum
        values: [established, contested]
  - id: routes
    title: Routes
    fields:
      bioavailability: {label: Bioavailability, type: text}
      onset: {label: Onset, type: text, required: false}
"""


def article(title: str, body: str = "Text.", *, summary: str = "A summary.",
            reviewed: str = "2026-11-01", extra: str = "", tags: str = "[test]") -> str:
    """Front matter + body for a test article (extra: more YAML lines)."""
    lines = [f"title: {title}", f"summary: {summary}", f"last_reviewed: {reviewed}",
             f"tags: {tags}"]
    if extra:
        lines.append(textwrap.dedent(extra).strip())
    return "---\n" + "\n".join(lines) + "\n---\n" + body + "\n"


SiteFactory = Callable[..., Path]


@pytest.fixture
def make_site(tmp_path: Path) -> SiteFactory:
    """make_site({"content/mechanism/a.md": "...", ...}) -> project folder.

    Templates and static files are the repository's own, so tests exercise the real theme.
    A config.yaml is written unless the files provide one.
    """

    def factory(files: Mapping[str, str | bytes], *, config: str | None = None,
                name: str = "site-project", copy_theme: bool = True) -> Path:
        root = tmp_path / name
        root.mkdir(parents=True, exist_ok=True)
        if copy_theme:
            _copy_tree(REPO / "templates", root / "templates")
            _copy_tree(REPO / "static", root / "static")
        (root / "content").mkdir(exist_ok=True)
        if "config.yaml" not in files:
            (root / "config.yaml").write_text(config or MINIMAL_CONFIG, "utf-8")
        for rel, data in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(data, bytes):
                path.write_bytes(data)
            else:
                path.write_text(data, "utf-8")
        return root

    return factory


def _copy_tree(source: Path, target: Path) -> None:
    for path in source.rglob("*"):
        if path.is_file():
            destination = target / path.relative_to(source)
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(path.read_bytes())


def run_build(root: Path, **options: object) -> BuildResult:
    """Build a project in-process with a fixed 'today' (review dates stay deterministic)."""
    options.setdefault("today", TODAY)
    return Builder(root / "config.yaml", BuildOptions(**options)).build()  # type: ignore[arg-type]


def read_out(root: Path, rel: str) -> str:
    return (root / "site" / rel).read_text("utf-8")


def run_cli(root: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `python build.py ARGS` in `root` as a user would."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, str(REPO / "build.py"), *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under folder -> bytes (to compare whole output trees)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository's own site (with its search index), built once per test session.

    Shared by the HTML-validity test and the browser tests; treat it as read-only.
    """
    output = tmp_path_factory.mktemp("repo-site") / "site"
    result = Builder(REPO / "config.yaml", BuildOptions(output=output, today=TODAY)).build()
    assert result.ok, "\n".join(d.format() for d in result.diagnostics)
    return output


def anchors(html: str) -> list[tuple[str, str, dict[str, str]]]:
    """Every <a> in a page as (href, visible text, attributes): markup-agnostic assertions."""
    from html.parser import HTMLParser

    found: list[tuple[str, str, dict[str, str]]] = []

    class Parser(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.stack: list[tuple[dict[str, str], list[str]]] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag == "a":
                self.stack.append(({k: v or "" for k, v in attrs}, []))

        def handle_data(self, data: str) -> None:
            for _, texts in self.stack:
                texts.append(data)

        def handle_endtag(self, tag: str) -> None:
            if tag == "a" and self.stack:
                attrs, texts = self.stack.pop()
                found.append((attrs.get("href", ""), " ".join("".join(texts).split()), attrs))

    Parser().feed(html)
    return found


def pytest_sessionstart(session: pytest.Session) -> None:
    """Run as if from a terminal, where Ctrl-C is never ignored.

    A suite started in the background by a non-interactive shell (`.ci/run &`, nohup)
    inherits SIGINT ignored, and so would every `kbgen serve` the tests start (Python keeps
    an inherited SIG_IGN): the tests that stop one with SIGINT would wait out their timeout.
    A Python handler is reset to the default in a child, so setting one here is enough."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true",
                     help="rewrite tests/fixtures/golden/expected from the current output")


@pytest.fixture
def tmpfs() -> Iterator[Callable[[Path, int], Path]]:
    """mount(folder, size_kb) -> that folder with a fresh tmpfs on it; unmounted afterwards.
    Needs root (CI runs as root); skipped where mounting is not allowed."""
    mounted: list[Path] = []

    def mount(where: Path, size_kb: int) -> Path:
        where.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs",
                               str(where)], capture_output=True, check=False)
        if done.returncode != 0:
            pytest.skip("cannot mount a tmpfs here (needs root)")
        mounted.append(where)
        return where

    yield mount
    for where in reversed(mounted):
        subprocess.run(["umount", "-l", str(where)], check=False)
