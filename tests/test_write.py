"""write: the new site is staged and swapped in whole; failures and kills leave the old one."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import snapshot

from kbgen.config_paths import MARKER_FILE
from kbgen.model import OutputFile
from kbgen.write import StaticFile, UnsafeOutputPath, commit_full, commit_incremental
from kbgen.write_folders import clean_debris, pid_alive
from kbgen.write_manifest import read_manifest


def outputs(files: dict[str, str]) -> list[OutputFile]:
    return [OutputFile(rel, text.encode(), f"node:{rel}") for rel, text in files.items()]


def staging_folders(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".staging-" in p.name or ".old-" in p.name)


def test_first_build_writes_the_site_with_its_marker_and_manifest(tmp_path: Path) -> None:
    site = tmp_path / "site"
    static = tmp_path / "style.css"
    static.write_text("body{}", "utf-8")
    result = commit_full(outputs({"index.html": "home", "a/index.html": "A"}),
                         [StaticFile("static/style.css", static)], site)
    assert snapshot(site)["index.html"] == b"home" and snapshot(site)["a/index.html"] == b"A"
    assert (site / "static/style.css").read_text("utf-8") == "body{}"
    assert sorted(read_manifest(site)) == ["a/index.html", "index.html", "static/style.css"]
    marker = json.loads((site / MARKER_FILE).read_text("utf-8"))
    assert marker["generator"].startswith("kbgen ")
    assert result.changed == ("a/index.html", "index.html", "static/style.css")
    assert staging_folders(tmp_path) == []


def test_a_rebuild_swaps_links_unchanged_files_and_reports_changes(tmp_path: Path) -> None:
    site = tmp_path / "site"
    commit_full(outputs({"index.html": "home", "a/index.html": "A", "b/index.html": "B"}), [], site)
    kept_inode = (site / "index.html").stat().st_ino
    result = commit_full(outputs({"index.html": "home", "a/index.html": "A2"}), [], site)
    assert result.changed == ("a/index.html",) and result.removed == ("b/index.html",)
    assert (site / "index.html").stat().st_ino == kept_inode  # hard-linked, not rewritten
    assert not (site / "b").exists() and (site / "a/index.html").read_text() == "A2"
    assert staging_folders(tmp_path) == []


def test_a_failure_before_the_swap_leaves_the_old_site_and_no_debris(tmp_path: Path) -> None:
    site = tmp_path / "site"
    commit_full(outputs({"index.html": "old"}), [], site)
    before = snapshot(site)

    def failing_index(staging: Path) -> None:
        assert (staging / "index.html").read_text() == "new"
        raise RuntimeError("search indexer crashed")

    with pytest.raises(RuntimeError):
        commit_full(outputs({"index.html": "new"}), [], site, before_swap=failing_index)
    assert snapshot(site) == before and staging_folders(tmp_path) == []


@pytest.mark.parametrize("rel", ["../escape.html", "/etc/passwd", "a/../../x", "", "a\x00b"])
def test_output_paths_cannot_leave_the_output_folder(tmp_path: Path, rel: str) -> None:
    site = tmp_path / "site"
    commit_full(outputs({"index.html": "old"}), [], site)
    before = snapshot(site)
    with pytest.raises(UnsafeOutputPath):
        commit_full([OutputFile(rel, b"x", "evil")], [], site)
    assert snapshot(site) == before and staging_folders(tmp_path) == []
    assert not (tmp_path / "escape.html").exists()


def test_debris_of_dead_builds_is_removed_but_live_builds_and_symlinks_are_kept(
    tmp_path: Path,
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid = int(dead.stdout)
    (tmp_path / f".site.staging-{dead_pid}" / "x").mkdir(parents=True)
    (tmp_path / f".site.old-{dead_pid}").mkdir()
    live = tmp_path / f".site.staging-{os.getppid()}"
    live.mkdir()
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep.txt").write_text("keep", "utf-8")
    (tmp_path / ".site.staging-12").symlink_to(precious)
    (tmp_path / ".git").mkdir()
    clean_debris(site)
    kept = sorted([f".site.staging-{os.getppid()}", ".site.staging-12"])
    assert staging_folders(tmp_path) == kept
    assert (precious / "keep.txt").read_text() == "keep" and (tmp_path / ".git").is_dir()


def test_pid_alive_tells_running_processes_from_finished_ones() -> None:
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
    assert pid_alive(os.getpid()) and pid_alive(os.getppid())
    assert not pid_alive(int(finished.stdout))


def test_the_manifest_reader_tolerates_junk(tmp_path: Path) -> None:
    assert read_manifest(tmp_path) == {}
    (tmp_path / MARKER_FILE).write_text("not json", "utf-8")
    assert read_manifest(tmp_path) == {}
    (tmp_path / MARKER_FILE).write_text('{"files": {"a": 3}}', "utf-8")
    assert read_manifest(tmp_path) == {}
    (tmp_path / MARKER_FILE).write_text('["a"]', "utf-8")
    assert read_manifest(tmp_path) == {}


def test_incremental_commit_replaces_only_changed_files_and_prunes_stale_ones(
    tmp_path: Path,
) -> None:
    site = tmp_path / "site"
    pages = {"index.html": "home", "a/index.html": "A", "b/x/index.html": "B"}
    commit_full(outputs(pages), [], site)
    old = read_manifest(site)
    kept_inode = (site / "index.html").stat().st_ino
    manifest = {k: v for k, v in old.items() if not k.startswith("b/")}
    manifest["a/index.html"] = hashlib.sha256(b"A2").hexdigest()
    result = commit_incremental(site, manifest, {"a/index.html": b"A2"}, {})
    assert result.changed == ("a/index.html",) and result.removed == ("b/x/index.html",)
    assert (site / "a/index.html").read_bytes() == b"A2" and not (site / "b").exists()
    assert (site / "index.html").stat().st_ino == kept_inode
    assert read_manifest(site) == manifest
    assert not [p for p in site.rglob("*") if p.name.endswith(".tmp")]


def test_incremental_commit_that_fails_while_writing_touches_nothing(tmp_path: Path) -> None:
    site = tmp_path / "site"
    commit_full(outputs({"index.html": "home", "a/index.html": "A"}), [], site)
    before = snapshot(site)
    manifest = {**read_manifest(site), "a/index.html": "0" * 64, "new.html": "1" * 64}
    with pytest.raises(ValueError):
        commit_incremental(site, manifest, {"a/index.html": b"A2"}, {})  # no bytes for new.html
    assert snapshot(site) == before


# -- file system faults: a clear error, the previous site intact ---------------------------


def _small_project(make_site) -> Path:
    from conftest import article

    mech = "status: established"
    return make_site({
        "content/mechanism/alpha.md": article("Alpha", "See [[beta]].", extra=mech),
        "content/mechanism/beta.md": article("Beta", "See [[alpha]].", extra=mech),
    })


def test_a_full_disk_is_an_error_at_the_output_setting_and_keeps_the_site(
    make_site, tmpfs
) -> None:
    from conftest import run_cli

    root = _small_project(make_site)
    disk = tmpfs(root / "disk", 400)
    assert run_cli(root, "build", "--output", "disk/site").returncode == 0
    before = snapshot(disk / "site")
    (disk / "filler").write_bytes(b"\0" * (os.statvfs(disk).f_bavail * 4096 - 8192))
    page = root / "content/mechanism/alpha.md"
    page.write_text(page.read_text() + "\nMore words.\n" * 200)
    result = run_cli(root, "build", "--jobs", "2", "--output", "disk/site")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "command line: error: cannot write the site: No space left on device" in result.stderr
    assert "hint: free space on the disk that holds" in result.stderr
    assert snapshot(disk / "site") == before
    assert staging_folders(disk) == []


def test_a_read_only_output_parent_is_an_error_and_keeps_the_site(make_site, tmpfs) -> None:
    from conftest import run_cli

    root = _small_project(make_site)
    disk = tmpfs(root / "ro", 1024)
    assert run_cli(root, "build", "--output", "ro/site").returncode == 0
    before = snapshot(disk / "site")
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    (root / "content/mechanism/alpha.md").write_text(
        (root / "content/mechanism/alpha.md").read_text() + "\nNew.\n")
    result = run_cli(root, "build", "--output", "ro/site")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "error: cannot write the site: Read-only file system" in result.stderr
    assert "make that folder writable" in result.stderr
    assert snapshot(disk / "site") == before


def test_an_output_folder_that_is_a_mount_point_is_replaced_in_place(
    tmp_path: Path, tmpfs
) -> None:
    site = tmpfs(tmp_path / "site", 1024)
    commit_full(outputs({"index.html": "old", "gone/index.html": "G"}), [], site)
    result = commit_full(outputs({"index.html": "new", "a/index.html": "A"}), [], site)
    assert os.path.ismount(site)
    assert snapshot(site)["index.html"] == b"new" and "gone/index.html" not in snapshot(site)
    assert result.removed == ("gone/index.html",)
    assert sorted(p.name for p in site.iterdir()) == [MARKER_FILE, "a", "index.html"]
    # serve's in-place updates work there too (their new files are staged inside)
    unchanged = hashlib.sha256(b"A").hexdigest()
    commit_incremental(site, {"index.html": "x", "a/index.html": unchanged},
                       {"index.html": b"changed"}, {})
    assert (site / "index.html").read_bytes() == b"changed"


def test_an_exchange_refused_as_busy_falls_back_to_moving_the_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from kbgen import write_swap

    site = tmp_path / "site"
    commit_full(outputs({"index.html": "old"}), [], site)

    def busy(a: Path, b: Path) -> bool:
        raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), str(a))

    monkeypatch.setattr(write_swap, "_exchange", busy)
    commit_full(outputs({"index.html": "new"}), [], site)
    assert (site / "index.html").read_text() == "new"
    assert staging_folders(tmp_path) == [] and sorted(os.listdir(site)) == [
        MARKER_FILE, "index.html"]
