"""Output-folder safety: a build can only ever replace a folder that kbgen itself made.

The anchors' record: MkDocs and Zola deleted whole projects, `.git` included, through a
misconfigured output folder. Every refusal is exit code 2 with nothing deleted; cleaning
never follows a symlink; a `.git` beside (or inside) the output always survives.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import article, run_build, run_cli, snapshot

MECH = "status: established"
PAGES = {
    "content/mechanism/alpha.md": article("Alpha", "See [[beta]].", extra=MECH),
    "content/mechanism/beta.md": article("Beta", "See [[alpha]].", extra=MECH),
}


def tree(folder: Path) -> dict[str, bytes | str]:
    """Every entry under folder (symlinks as their target text), to prove nothing changed."""
    entries: dict[str, bytes | str] = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_symlink():
            entries[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            entries[rel] = path.read_bytes()
        else:
            entries[rel] = "dir"
    return entries


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake home (the CLI child inherits HOME); the project lives inside it."""
    folder = tmp_path / "home"
    (folder / "Documents").mkdir(parents=True)
    (folder / "Documents" / "thesis.txt").write_text("years of work", "utf-8")
    monkeypatch.setenv("HOME", str(folder))
    return folder


@pytest.fixture
def project(make_site, home: Path) -> Path:
    root = make_site(PAGES, name="home/work/kb")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n", "utf-8")
    return root


REFUSALS = [
    # (--output value, relative to the project; what the message says)
    ("/", "is the filesystem root"),
    ("{home}", "is your home folder"),
    (".", "is the project folder"),
    ("..", "is a parent of the project folder"),
    ("../..", "is your home folder"),
    ("content", "is the source folder 'content'"),
    ("content/site", "is inside the source folder 'content'"),
    ("templates", "is the source folder 'templates'"),
    ("templates/partials", "is inside the source folder 'templates'"),
    ("static", "is the source folder 'static'"),
    ("static/out", "is inside the source folder 'static'"),
    ("../notes", "is a non-empty folder that kbgen did not create (no .kbgen-site marker file)"),
    ("config.yaml", "exists and is not a folder"),
]


@pytest.mark.parametrize(("output", "problem"), REFUSALS)
def test_dangerous_output_folder_is_refused_and_nothing_is_deleted(
    project: Path, home: Path, output: str, problem: str
) -> None:
    notes = project.parent / "notes"
    notes.mkdir(exist_ok=True)
    (notes / "todo.txt").write_text("mine", "utf-8")
    output = output.replace("{home}", str(home))
    before = tree(home)
    result = run_cli(project, "build", "--output", output)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"command line: error: refusing to use --output '{output}'")
    assert f": it {problem}; a build replaces the whole output folder" in result.stderr
    assert "  hint: point --output at a new folder, or at one kbgen built before; nothing was " \
        "deleted" in result.stderr
    assert "Traceback" not in result.stderr
    assert tree(home) == before


@pytest.mark.parametrize(
    ("target", "problem"),
    [
        (".", "is the project folder"),
        ("..", "is a parent of the project folder"),
        ("{home}", "is your home folder"),
        ("content", "is the source folder 'content'"),
        ("templates", "is the source folder 'templates'"),
        ("static", "is the source folder 'static'"),
        ("/", "is the filesystem root"),
    ],
)
def test_symlink_resolving_to_a_dangerous_folder_is_refused(
    project: Path, home: Path, target: str, problem: str
) -> None:
    link = project / "out"
    link.symlink_to(target.replace("{home}", str(home)))
    before = tree(home)
    result = run_cli(project, "build", "--output", "out")
    assert result.returncode == 2
    real = (project / target.replace("{home}", str(home))).resolve()
    assert f"refusing to use --output 'out' (which resolves to '{real}'): it {problem}" \
        in result.stderr
    assert tree(home) == before


def test_config_output_dir_refusal_points_at_the_config_line(project: Path, home: Path) -> None:
    config = project / "config.yaml"
    config.write_text(config.read_text("utf-8") + "output_dir: ..\n", "utf-8")
    line = config.read_text("utf-8").count("\n")
    before = tree(home)
    result = run_cli(project, "check")
    assert result.returncode == 2
    assert result.stderr.startswith(
        f"config.yaml:{line}:13: error: refusing to use output_dir '..': it is a parent of "
        "the project folder"
    )
    assert tree(home) == before


def test_new_empty_folder_and_kbgen_made_folder_are_accepted(project: Path, tmp_path: Path) -> None:
    empty = tmp_path / "elsewhere" / "empty"
    empty.mkdir(parents=True)
    assert run_cli(project, "build", "--output", str(empty)).returncode == 0
    assert (empty / ".kbgen-site").is_file()
    assert run_cli(project, "build", "--output", str(empty)).returncode == 0  # ours now


def test_output_holding_a_git_repository_is_refused(project: Path) -> None:
    assert run_build(project).ok
    deploy = project / "site" / ".git"
    deploy.mkdir()
    (deploy / "HEAD").write_text("ref: refs/heads/gh-pages\n", "utf-8")
    before = tree(project / "site")
    result = run_cli(project, "build")
    assert result.returncode == 2
    assert "refusing to use output_dir 'site'" in result.stderr
    assert "it holds a .git repository, which the build would delete" in result.stderr
    assert tree(project / "site") == before


def test_git_folder_beside_the_output_survives_every_kind_of_build(project: Path) -> None:
    git_before = tree(project / ".git")
    assert run_cli(project, "build").returncode == 0  # cold build into a new folder
    alpha = project / "content/mechanism/alpha.md"
    alpha.write_text(alpha.read_text("utf-8").replace("See", "Now see"), "utf-8")
    assert run_cli(project, "build").returncode == 0  # warm build
    config = project / "config.yaml"
    config.write_text(config.read_text("utf-8").replace("Test KB", "Test KB 2"), "utf-8")
    assert run_cli(project, "build").returncode == 0  # config change: a full swap
    alpha.write_text("---\ntitle: [broken\n---\n", "utf-8")
    assert run_cli(project, "build").returncode == 1  # failed build
    assert run_cli(project, "build", "--output", ".").returncode == 2  # refused
    assert tree(project / ".git") == git_before
    assert not [p for p in project.iterdir() if p.name.startswith(".site.")]


def test_cleaning_never_follows_a_symlink_inside_the_output(project: Path, home: Path) -> None:
    assert run_build(project).ok
    site = project / "site"
    (site / "home-link").symlink_to(home)
    (site / "mechanism" / "thesis-link.txt").symlink_to(home / "Documents" / "thesis.txt")
    before = tree(home / "Documents")
    alpha = project / "content/mechanism/alpha.md"
    alpha.write_text(alpha.read_text("utf-8").replace("See", "Now see"), "utf-8")
    assert run_cli(project, "build").returncode == 0
    config = project / "config.yaml"
    config.write_text(config.read_text("utf-8").replace("Test KB", "Test KB 2"), "utf-8")
    assert run_cli(project, "build").returncode == 0  # the old site, links and all, is removed
    assert tree(home / "Documents") == before
    assert not (site / "home-link").exists()


def test_a_build_never_writes_through_a_symlinked_output_file(project: Path, home: Path) -> None:
    assert run_build(project).ok
    page = project / "site" / "mechanism" / "alpha" / "index.html"
    page.unlink()
    page.symlink_to(home / "Documents" / "thesis.txt")
    before = tree(home / "Documents")
    alpha = project / "content/mechanism/alpha.md"
    alpha.write_text(alpha.read_text("utf-8").replace("See", "Now see"), "utf-8")
    assert run_cli(project, "build").returncode == 0
    assert tree(home / "Documents") == before
    assert not page.is_symlink() and "Now see" in page.read_text("utf-8")


def test_staging_debris_that_is_a_symlink_is_left_alone(project: Path, home: Path) -> None:
    decoy = project / ".site.staging-1"
    decoy.symlink_to(home)
    stale = project / ".site.old-999999999"
    (stale / "x").mkdir(parents=True)
    before = tree(home / "Documents")
    assert run_cli(project, "build").returncode == 0
    assert tree(home / "Documents") == before
    assert decoy.is_symlink()
    assert not stale.exists()  # real debris of a dead build is removed


def test_nothing_in_sources_is_ever_written(project: Path) -> None:
    sources = {name: snapshot(project / name) for name in ("content", "templates", "static")}
    config = (project / "config.yaml").read_bytes()
    assert run_cli(project, "build").returncode == 0
    assert run_cli(project, "check").returncode == 0
    assert {name: snapshot(project / name) for name in sources} == sources
    assert (project / "config.yaml").read_bytes() == config
