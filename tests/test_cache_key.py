"""The build cache's HMAC key: where it comes from, one per run, shared with every worker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO
from test_parallel import many_pages

from kbgen.incremental.sealing import KEY_ENV, MIN_ENV_KEY_CHARS, resolve_key

SECRET = "0123456789abcdef" * 4  #: 64 characters, as `secrets.token_hex(32)` gives


def build_cli(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`python build.py build ARGS` in `root`, with `env` over a clean cache-key environment."""
    base = {k: v for k, v in os.environ.items() if k not in (KEY_ENV, "XDG_CACHE_HOME")}
    return subprocess.run(
        [sys.executable, str(REPO / "build.py"), "build", *args],
        cwd=root,
        env={**base, "PYTHONPATH": str(REPO), **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_key_file_is_made_once_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "kbgen" / "cache-key"
    first = resolve_key("", path)
    assert first.source == str(path) and first.notice is None and len(first.secret) == 32
    assert path.stat().st_mode & 0o777 == 0o600
    assert resolve_key("", path).secret == first.secret


def test_truncated_key_file_is_replaced_not_a_key_per_process(tmp_path: Path) -> None:
    """A damaged key file used to mean a fresh key in every process (workers included)."""
    path = tmp_path / "kbgen" / "cache-key"
    path.parent.mkdir()
    path.write_bytes(b"short")
    key = resolve_key("", path)
    assert key.notice is None and key.source == str(path)
    assert path.read_bytes() == key.secret
    assert resolve_key("", path).secret == key.secret
    assert [p.name for p in path.parent.iterdir()] == ["cache-key"]  # no temporary left


def test_environment_key_wins_and_touches_no_file(tmp_path: Path) -> None:
    path = tmp_path / "kbgen" / "cache-key"
    key = resolve_key(SECRET, path)
    assert key.source == KEY_ENV and key.notice is None and len(key.secret) == 32
    assert not path.exists()
    assert resolve_key(SECRET, path).secret == key.secret  # the same secret on every runner
    assert resolve_key(SECRET[::-1], path).secret != key.secret
    assert SECRET.encode() not in key.secret  # derived, never the secret itself


def test_empty_environment_key_is_unset_and_a_short_one_is_refused(tmp_path: Path) -> None:
    """An undefined CI secret expands to "": the key file is used, silently. A short secret
    would be guessable: it is ignored with a warning naming the variable."""
    path = tmp_path / "kbgen" / "cache-key"
    assert resolve_key("", path).source == str(path)
    short = resolve_key("x" * (MIN_ENV_KEY_CHARS - 1), path)
    assert short.source == str(path) and short.notice is not None
    assert short.notice.format().startswith(f"{KEY_ENV}:1:1: warning: {KEY_ENV} is set but")


@pytest.mark.parametrize("layout", ["cache-home-is-a-file", "kbgen-is-a-file", "key-is-a-folder"])
def test_unstorable_key_warns_and_is_used_for_this_run(tmp_path: Path, layout: str) -> None:
    """(A read-only home is the same case, but cannot be made for root, who runs CI.)"""
    cache_home = tmp_path / "cache"
    if layout == "cache-home-is-a-file":
        cache_home.write_text("x")
    elif layout == "kbgen-is-a-file":
        cache_home.mkdir()
        (cache_home / "kbgen").write_text("x")
    else:
        (cache_home / "kbgen" / "cache-key").mkdir(parents=True)
    key = resolve_key("", cache_home / "kbgen" / "cache-key")
    assert key.source == "this run only" and len(key.secret) == 32
    assert key.notice is not None
    text = key.notice.format()
    assert "warning: the build cache key cannot be stored here" in text
    assert KEY_ENV in text and "XDG_CACHE_HOME" in text


def test_parallel_build_without_a_storable_key_shares_one_key_with_its_workers(
    make_site, tmp_path: Path
) -> None:
    """#19: with no writable key file each forked worker made a key of its own, sealed its
    conversions with it, and the parent refused them: a CacheCorrupt traceback (exit 3) on
    any cold build of >= 48 pages with --jobs >= 2. Now: the build works and says why its
    cache will not last."""
    root = make_site(many_pages(60))
    not_a_folder = tmp_path / "cache-home"
    not_a_folder.write_text("a file, not a folder")
    done = build_cli(root, {"XDG_CACHE_HOME": str(not_a_folder)}, "--jobs", "2", "--verbose")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "warning: the build cache key cannot be stored here" in done.stderr
    assert "60 Markdown conversions, " in done.stderr and "2 process(es)" in done.stderr
    assert len(list((root / "site" / "mechanism").glob("page-*/index.html"))) == 60


def test_strict_build_does_not_fail_on_the_key_notice(make_site, tmp_path: Path) -> None:
    """The notice is about the machine, not the content: --strict builds still pass."""
    root = make_site(many_pages(3))
    not_a_folder = tmp_path / "cache-home"
    not_a_folder.write_text("x")
    done = build_cli(root, {"XDG_CACHE_HOME": str(not_a_folder)}, "--strict")
    assert done.returncode == 0, done.stderr
    assert "cache key cannot be stored" in done.stderr
