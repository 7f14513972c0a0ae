"""discover: which files are pages, data, static and templates; which can never build."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from kbgen.config import load_config
from kbgen.config_types import Config
from kbgen.diagnostics import sorted_diagnostics
from kbgen.discover import is_ignored_name, scan

CONFIG = """\
title: KB
cache_dir: .cache
sections:
  - id: mechanism
    title: Mechanism
  - id: routes
    title: Routes
"""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "kb"
    for name in ("content/mechanism", "content/routes", "templates", "static/css"):
        (folder / name).mkdir(parents=True)
    (folder / "config.yaml").write_text(CONFIG, "utf-8")
    return folder


def touch(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x", "utf-8")


def config_of(root: Path) -> Config:
    config, problems = load_config(root / "config.yaml")
    assert config is not None, problems
    return config


def found(root: Path) -> tuple[list[str], list[str], list[str]]:
    tree, diagnostics = scan(config_of(root))
    return (
        [f.shown for f in tree.pages],
        sorted(tree.data),
        [d.format() for d in sorted_diagnostics(diagnostics)],  # as the CLI prints them
    )


@pytest.mark.parametrize(
    "name",
    [".hidden.md", "a.md~", ".a.md.swp", "a.swo", "4913", ".#a.md", "#a.md#", "a.md___jb_tmp___"],
)
def test_editor_temp_files_and_dotfiles_are_ignored(name: str) -> None:
    assert is_ignored_name(name)


def test_pages_data_and_assets_are_told_apart(root: Path) -> None:
    touch(
        root,
        "content/index.md",
        "content/references.yaml",
        "content/glossary.yaml",
        "content/mechanism/_index.md",
        "content/mechanism/nmda.md",
        "content/mechanism/diagram.png",
        "content/routes/oral.md",
        "content/routes/.oral.md.swp",
        "content/routes/oral.md~",
        "content/__pycache__/x.md",
    )
    pages, data, diagnostics = found(root)
    assert pages == [
        "content/index.md",
        "content/mechanism/_index.md",
        "content/mechanism/nmda.md",
        "content/routes/oral.md",
    ]
    assert data == ["glossary.yaml", "references.yaml"] and diagnostics == []


def test_output_and_cache_folders_inside_content_are_skipped(root: Path) -> None:
    config = (root / "config.yaml").read_text("utf-8")
    (root / "config.yaml").write_text(config.replace("cache_dir: .cache", "cache_dir: content/c"))
    touch(root, "content/c/mechanism/stale.md", "content/mechanism/a.md")
    refused, problems = load_config(root / "config.yaml")  # config.py refuses it since #19;
    assert refused is None and "refusing to use cache_dir" in problems[0].message
    (root / "config.yaml").write_text(config)  # discovery still skips it, should one get by
    inside = dataclasses.replace(config_of(root), cache_dir=root / "content" / "c")
    tree, diagnostics = scan(inside)
    assert [f.shown for f in tree.pages] == ["content/mechanism/a.md"] and diagnostics == []


def test_misplaced_pages_are_errors_with_the_fix(root: Path) -> None:
    touch(root, "content/mechanism/deep/x.md", "content/mechansim/y.md")
    pages, _, diagnostics = found(root)
    assert pages == []
    assert diagnostics == [
        "content/mechanism/deep/x.md:1:1: error: articles live exactly one level deep: "
        "content/<section>/<slug>.md\n  hint: move it to content/mechanism/x.md",
        "content/mechansim/y.md:1:1: error: section 'mechansim' is not declared in config.yaml\n"
        "  hint: did you mean 'mechanism'?",
    ]


def test_top_level_pages_are_standalone_unless_their_url_is_taken(root: Path) -> None:
    touch(root, "content/about.md", "content/index.md", "content/routes.md",
          "content/glossary.md", "content/_index.md")
    pages, _, diagnostics = found(root)
    assert pages == ["content/about.md", "content/index.md"]
    assert diagnostics == [
        "content/_index.md:1:1: error: content/_index.md is not a page (section intros live "
        "in content/<section>/)\n  hint: rename it to content/index.md for the home page, or "
        "move it into a section",
        "content/glossary.md:1:1: error: the page 'glossary.md' would have the URL of the "
        "generated 'glossary' pages\n  hint: rename the file",
        "content/routes.md:1:1: error: the page 'routes.md' would have the URL of the section "
        "'routes'\n  hint: rename it, or move it to content/routes/_index.md as the section's "
        "intro",
    ]


def test_symlinks_loops_and_broken_links_are_named(root: Path, tmp_path: Path) -> None:
    touch(root, "content/mechanism/real.md")
    mechanism = root / "content" / "mechanism"
    os.symlink("real.md", mechanism / "alias.md")  # inside the project: fine
    os.symlink("self.md", mechanism / "self.md")
    os.symlink("gone.md", mechanism / "broken.md")
    outside = tmp_path / "outside.md"
    outside.write_text("x", "utf-8")
    os.symlink(outside, mechanism / "outside.md")
    os.symlink("..", mechanism / "up")  # a folder: never followed
    pages, _, diagnostics = found(root)
    assert pages == ["content/mechanism/alias.md", "content/mechanism/real.md"]
    assert [d.split("\n")[0] for d in diagnostics] == [
        "content/mechanism/broken.md:1:1: error: broken symlink: 'broken.md' -> 'gone.md', "
        "which does not exist",
        f"content/mechanism/outside.md:1:1: error: symlink points outside the project (to "
        f"'{outside}'); it is not copied",
        "content/mechanism/self.md:1:1: error: symlink loop: 'self.md' -> 'self.md' leads back "
        "to itself",
        "content/mechanism/up:1:1: warning: symlinked folder is not followed",
    ]


def test_fifos_and_folders_named_like_pages_are_refused_without_blocking(root: Path) -> None:
    os.mkfifo(root / "content" / "mechanism" / "pipe.md")
    (root / "content" / "mechanism" / "folder.md").mkdir()
    os.mkfifo(root / "static" / "css" / "stream.css")
    pages, _, diagnostics = found(root)
    assert pages == []
    assert [d.split("\n")[0] for d in diagnostics] == [
        "content/mechanism/folder.md:1:1: error: 'folder.md' is a folder, not a Markdown file",
        "content/mechanism/pipe.md:1:1: error: 'pipe.md' is a named pipe (FIFO), not a regular "
        "file; it cannot be read",
        "static/css/stream.css:1:1: error: 'stream.css' is a named pipe (FIFO), not a regular "
        "file; it cannot be read",
    ]


def test_static_and_templates_are_listed_with_their_relative_paths(root: Path) -> None:
    touch(root, "static/css/site.css", "static/.DS_Store", "templates/base.html")
    tree, diagnostics = scan(config_of(root))
    assert [f.rel for f in tree.static] == ["css/site.css"]
    assert [f.rel for f in tree.templates] == ["base.html"] and diagnostics == []
