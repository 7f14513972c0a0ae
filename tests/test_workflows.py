"""The repository's automation: workflows pass actionlint, scripts pass shellcheck, and the
README's test command is the one .ci/run runs."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from conftest import REPO

WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.y*ml"))
SCRIPTS = [REPO / ".ci" / "run", *sorted((REPO / "scripts").iterdir())]


def tool(name: str) -> str:
    """A binary from the test extras (installed beside this Python), else from PATH."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: install the test lock (README, 'Set up')")
    return found


def actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("actionlint"), "-shellcheck", tool("shellcheck"), *map(str, files)],
        capture_output=True, text=True, timeout=120, check=False,
    )


def test_there_is_a_pages_workflow() -> None:
    assert REPO / ".github" / "workflows" / "pages.yml" in WORKFLOWS


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_passes_actionlint(workflow: Path) -> None:
    done = actionlint(workflow)
    assert done.returncode == 0 and done.stdout == "", done.stdout + done.stderr


def test_actionlint_does_catch_mistakes(tmp_path: Path) -> None:
    """Guards the test above: a broken workflow (bad expression, shell bug) is reported."""
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  b:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ github.nope }} $UNQUOTED\n"
        "      - run: cd $HOME/x\n",
        "utf-8",
    )
    done = actionlint(broken)
    assert done.returncode == 1
    assert "github.nope" in done.stdout and "shellcheck" in done.stdout


def test_pages_workflow_builds_with_the_lock_and_a_warm_cache() -> None:
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "pages.yml").read_text("utf-8"))
    steps = workflow["jobs"]["build"]["steps"]
    runs = "\n".join(step.get("run", "") for step in steps)
    assert "--require-hashes -r requirements.lock" in runs and "--no-deps -e ." in runs
    cache = next(s for s in steps if str(s.get("uses", "")).startswith("actions/cache@"))
    assert cache["with"]["path"] == ".kbgen-cache"
    build = next(s for s in steps if "build.py build" in s.get("run", ""))
    assert build["env"]["KBGEN_CACHE_KEY"] == "${{ secrets.KBGEN_CACHE_KEY }}"
    # The key never travels with the cache: nothing caches the key file's folder.
    assert "cache-key" not in str(cache) and ".cache/kbgen" not in str(cache)
    uploads = [s for s in steps if str(s.get("uses", "")).startswith("actions/upload-pages")]
    assert uploads and uploads[0]["with"]["path"] == "site"
    assert workflow[True]["push"]["branches"] == ["main"]  # `on:` reads as True in YAML 1.1
    assert "pull_request" not in workflow[True] and "pull_request_target" not in workflow[True]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_passes_shellcheck(script: Path) -> None:
    done = subprocess.run(
        [tool("shellcheck"), str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def readme_command(heading: str) -> str:
    setup = (REPO / "README.md").read_text("utf-8").split("## Set up", 1)[1]
    block = setup.split("```bash\n", 1)[1].split("```", 1)[0]
    lines = block.splitlines()
    return lines[lines.index(heading) + 1]


def test_ci_runs_exactly_the_readmes_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text("utf-8").splitlines()
    command = ci[ci.index("# The README's test command:") + 1]
    assert command == readme_command("# 2. Run the tests")
    assert "set -euo pipefail" in ci  # a failing install or test fails CI
    assert command.endswith(".venv/bin/python -m pytest")  # the whole suite, nothing filtered


def test_readme_commands_install_from_the_lock() -> None:
    for heading, lock in (
        ("# 1. Build the site into site/ (open site/index.html, or serve it: see \"Live preview\")",
         "requirements.lock"),
        ("# 2. Run the tests", "requirements-test.lock"),
    ):
        command = readme_command(heading)
        assert f"pip install -q --require-hashes -r {lock} && " in command
        assert ".venv/bin/pip install -q --no-deps -e . && " in command
        assert (REPO / lock).is_file()


def test_every_kbgen_package_is_listed_for_setuptools() -> None:
    """A subpackage missing from pyproject's `packages` is left out of a wheel (a plain
    `pip install .`); the editable install the tests use would never notice."""
    settings = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))
    listed = set(settings["tool"]["setuptools"]["packages"])
    found = {".".join(init.parent.relative_to(REPO).parts)
             for init in (REPO / "kbgen").rglob("__init__.py")}
    assert found == listed


def test_lock_files_pin_every_package_with_hashes() -> None:
    """Every requirement is `name==version` with at least one hash (pip --require-hashes
    refuses anything else); the test lock holds the runtime lock's versions."""
    def pins(lock: str) -> dict[str, str]:
        text = (REPO / lock).read_text("utf-8")
        entries = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2])
        found = {}
        for entry in entries:
            name, version = re.match(r"([A-Za-z0-9_.-]+)==([^ ;\\]+)", entry).groups()
            assert "--hash=sha256:" in entry, entry
            found[name] = version
        return found

    runtime, test = pins("requirements.lock"), pins("requirements-test.lock")
    assert {"markdown", "jinja2", "pyyaml", "pygments", "watchdog", "nh3", "pagefind"} <= set(
        runtime
    )
    assert all(test[name] == version for name, version in runtime.items())


def test_publishing_guide_covers_every_target_and_the_key_choices() -> None:
    guide = (REPO / "docs" / "publishing.md").read_text("utf-8")
    headings = set(re.findall(r"^## (.+)$", guide, re.M))
    assert {"GitHub Pages", "Netlify", "Cloudflare Pages", "Any static host"} <= headings
    assert "`base_url` and sub-paths" in headings and "https://example.org/kb/" in guide
    for choice in ("KBGEN_CACHE_KEY", "the key file", "nothing carried over", "committed"):
        assert choice in guide
    assert "docs/publishing.md" in (REPO / "README.md").read_text("utf-8")
