"""Parallel cold builds: the same bytes for any number of processes; CLI flags and progress."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import REPO, TODAY, article, run_cli, snapshot

from kbgen.cli import ProgressBar
from kbgen.incremental import Builder
from kbgen.pipeline import BuildOptions

MECH = "status: established"


def many_pages(count: int) -> dict[str, str]:
    """`count` articles in a ring of links, with tags, code and a citation-free body."""
    files = {}
    for i in range(count):
        body = (
            f"Article {i} introduction.\n\n## Part one\n\nSee [[page-{(i + 1) % count}]] and "
            f"[[page-{(i + 7) % count}]].\n\n```python\nprint({i})\n```\n\n## Part two\n\nMore."
        )
        files[f"content/mechanism/page-{i}.md"] = article(
            f"Page {i}", body, extra=MECH, tags=f"[t{i % 5}, all]"
        )
    return files


def build_in_subprocess(
    root: Path, output: Path, jobs: int, *, load_min: int, render_min: int
) -> str:
    """Build in a fresh interpreter (no threads, so workers fork) with lowered thresholds."""
    script = textwrap.dedent(
        f"""
        import datetime, sys
        from pathlib import Path
        import kbgen.incremental.loading, kbgen.incremental.rendering
        kbgen.incremental.loading.PARALLEL_MIN = {load_min}
        kbgen.incremental.rendering.RENDER_PARALLEL_MIN = {render_min}
        from kbgen.incremental import Builder
        from kbgen.pipeline import BuildOptions
        result = Builder(Path({str(root / "config.yaml")!r}), BuildOptions(
            output=Path({str(output)!r}), jobs={jobs}, cache=False,
            today=datetime.date({TODAY.year}, {TODAY.month}, {TODAY.day}))).build()
        print(result.ok, result.workers, len(result.rendered))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize(
    ("load_min", "render_min"), [(2, 10**6), (10**6, 2)], ids=["parallel-load", "parallel-render"]
)
def test_parallel_stages_write_the_same_bytes_as_one_process(
    make_site, tmp_path: Path, load_min: int, render_min: int
) -> None:
    root = make_site(many_pages(24))
    serial = build_in_subprocess(
        root, tmp_path / "one", 1, load_min=load_min, render_min=render_min
    )
    parallel = build_in_subprocess(
        root, tmp_path / "two", 2, load_min=load_min, render_min=render_min
    )
    assert serial.split()[:2] == ["True", "1"]
    assert parallel.split()[:2] == ["True", "2"]  # the pool really ran
    assert serial.split()[2] == parallel.split()[2]  # the same nodes rendered
    assert snapshot(tmp_path / "one") == snapshot(tmp_path / "two")


def test_cli_output_is_identical_across_processes_and_hash_seeds(make_site, tmp_path: Path) -> None:
    root = make_site(many_pages(60))  # above the loader's parallel threshold
    results = []
    for jobs, seed in (("1", "1"), ("2", "12345")):
        env_seed = {"PYTHONHASHSEED": seed}
        out = tmp_path / f"out-{jobs}"
        done = subprocess.run(
            [sys.executable, str(REPO / "build.py"), "build", "--jobs", jobs, "--output", str(out)],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "PYTHONPATH": str(REPO), **env_seed},
        )
        assert done.returncode == 0, done.stderr
        results.append(snapshot(out))
        # the cache is shared by both runs; remove it so the second is cold as well
        subprocess.run(["rm", "-rf", str(root / ".kbgen-cache")], check=True)
    assert results[0] == results[1]


def test_failure_inside_a_worker_leaves_the_old_site_and_no_debris(
    make_site, tmp_path: Path
) -> None:
    root = make_site(many_pages(12))
    output = tmp_path / "site"
    build_in_subprocess(root, output, 1, load_min=10**6, render_min=10**6)
    before = snapshot(output)
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        import kbgen.render, kbgen.incremental.rendering
        kbgen.incremental.rendering.RENDER_PARALLEL_MIN = 2
        def broken(view, tag, file):
            raise RuntimeError("a bug while rendering")
        kbgen.render._tag_context = broken
        from kbgen.incremental import Builder
        from kbgen.pipeline import BuildOptions
        Builder(Path({str(root / "config.yaml")!r}),
                BuildOptions(output=Path({str(output)!r}), jobs=2, cache=False)).build()
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode != 0 and "a bug while rendering" in done.stderr
    assert snapshot(output) == before
    assert [p.name for p in tmp_path.iterdir() if "staging" in p.name] == []


def test_progress_is_reported_per_stage(make_site) -> None:
    root = make_site(many_pages(5))
    seen: list[tuple[str, int, int]] = []
    result = Builder(
        root / "config.yaml",
        BuildOptions(today=TODAY, jobs=1, progress=lambda *event: seen.append(event)),
    ).build()
    assert result.ok
    assert ("load", 5, 5) in seen
    renders = [event for event in seen if event[0] == "render"]
    assert renders and renders[-1][1] == renders[-1][2] == len(result.rendered)


# -- the command line ----------------------------------------------------------------------


def test_jobs_must_be_positive(make_site) -> None:
    root = make_site(many_pages(2))
    result = run_cli(root, "build", "--jobs", "0")
    assert result.returncode == 2
    assert "must be at least 1" in result.stderr


def test_quiet_prints_nothing_and_verbose_prints_stages(make_site) -> None:
    root = make_site(many_pages(3))
    quiet = run_cli(root, "build", "--quiet")
    assert quiet.returncode == 0 and quiet.stdout == "" and quiet.stderr == ""
    page = root / "content/mechanism/page-1.md"
    page.write_text(page.read_text("utf-8").replace("More.", "More words."), "utf-8")
    verbose = run_cli(root, "build", "--verbose")
    assert verbose.returncode == 0
    assert "incremental build: 1 nodes rendered, 1 Markdown conversions" in verbose.stderr
    for stage in ("discover", "load", "resolve", "plan", "render", "write"):
        assert f"  {stage} " in verbose.stderr
    assert "\r" not in verbose.stderr  # no progress bar when stderr is not a terminal


def test_progress_bar_waits_then_draws_then_erases() -> None:
    stream = io.StringIO()
    slow = ProgressBar(stream, delay=60)
    slow("load", 1, 10)
    assert stream.getvalue() == ""
    bar = ProgressBar(stream, delay=0, width=10)
    bar("load", 5, 10)
    assert stream.getvalue() == "\rload     [#####.....] 5/10\x1b[K"
    bar.close()
    assert stream.getvalue().endswith("\r\x1b[K")


def test_the_builder_runs_its_work_in_the_pools_it_is_given(
    make_site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parallelism is injected: the Builder asks its `pools` factory for every pool, with
    the work's state as an argument, and a factory that gives none (so the work runs in
    this process) writes the same bytes as one process."""
    from contextlib import contextmanager

    import kbgen.incremental.loading
    import kbgen.incremental.rendering

    for name in ("PARALLEL_MIN", "PARALLEL_MIN_FRESH"):
        monkeypatch.setattr(kbgen.incremental.loading, name, 2)
    monkeypatch.setattr(kbgen.incremental.rendering, "RENDER_PARALLEL_MIN", 2)
    root = make_site(many_pages(12))
    asked: list[tuple[int, str, bool]] = []

    @contextmanager
    def no_pools(jobs: int, state: object, *, require_fork: bool = False):  # type: ignore[no-untyped-def]
        asked.append((jobs, type(state).__name__, require_fork))
        yield None

    options = {"jobs": 3, "cache": False, "today": TODAY}
    injected = Builder(
        root / "config.yaml", BuildOptions(output=tmp_path / "in", **options), pools=no_pools  # type: ignore[arg-type]
    ).build()
    assert injected.ok and injected.workers == 1
    assert asked == [(3, "PageLoader", False), (2, "_Helping", True)]
    options["jobs"] = 1
    alone = Builder(root / "config.yaml", BuildOptions(output=tmp_path / "one", **options)).build()  # type: ignore[arg-type]
    assert alone.ok and injected.rendered == alone.rendered
    assert snapshot(tmp_path / "in") == snapshot(tmp_path / "one")
