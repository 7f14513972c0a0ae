#!/usr/bin/env python3
"""Measure kbgen against Hugo, MkDocs, Material for MkDocs and Pelican on the same corpus.

    .venv/bin/python benchmarks/run.py --pages 1000
    .venv/bin/python benchmarks/run.py --pages 1000 10000 --runs 3 --limit 600

For each size, the synthetic corpus (/work/shared/bench/make_corpus.py, found as
../shared/bench/make_corpus.py beside the repository unless --corpus-script says otherwise)
is generated once per flavor under benchmarks/work/corpus/. Every run then copies it to a fresh
folder and measures, tool by tool (the order rotates between runs so machine noise spreads
evenly):

  cold        the first build of the fresh copy (for kbgen: no cache, no output folder)
  no change   the same command again, nothing edited
  body edit   after changing one line of one article's body
  title edit  after changing the same article's title

plus the peak memory of the process tree during the cold build (the PSS of the tool and all
its child processes, sampled every 50 ms, never below the main process's own peak RSS) and
the size of the output folder. Medians over --runs are printed as a table with ratios against Hugo
and MkDocs, and written to benchmarks/RESULTS.md. A tool that runs longer than --limit seconds
is stopped and reported as "> limit".

The peers are installed from the pins in benchmarks/requirements-peers.txt into virtual
environments under benchmarks/work/venvs/ (one per peer: Pelican 4.12 pins Pygments < 2.20 and
Material 9.8 needs >= 2.20, so they cannot share one). This is not a test: nothing here runs
under pytest, and the numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORK = HERE / "work"
DEFAULT_CORPUS_SCRIPT = REPO.parent / "shared" / "bench" / "make_corpus.py"
MEASURES = ("cold", "no change", "body edit", "title edit")
EDIT_SLUG_INDEX = 0  #: the article edited: the first one the generator plans

#: peer -> (virtualenv, packages from requirements-peers.txt it needs)
PEER_VENVS = {
    "hugo": ("hugo", ("hugo",)),
    "hugo+pagefind": ("hugo", ("hugo",)),
    "mkdocs": ("mkdocs", ("mkdocs", "mkdocs-material", "markdown")),
    "mkdocs-material": ("mkdocs", ("mkdocs", "mkdocs-material", "markdown")),
    "pelican": ("pelican", ("pelican", "markdown")),
}
FLAVOR = {
    "kbgen": "kb",
    "kbgen+search": "kb",
    "bare-loop": "kb",  #: bare_loop.py: the floor of any Python-Markdown generator
    "hugo": "hugo",
    "hugo+pagefind": "hugo",
    "mkdocs": "mkdocs",
    "mkdocs-material": "mkdocs-material",
    "pelican": "pelican",
}
OUTPUT = {
    "kbgen": "site",
    "kbgen+search": "site",
    "bare-loop": "site",
    "hugo": "public",
    "hugo+pagefind": "public",
    "mkdocs": "site",
    "mkdocs-material": "site",
    "pelican": "output",
}
ALL_TOOLS = tuple(FLAVOR)


# -- running one command -----------------------------------------------------------------------


@dataclass
class Sample:
    seconds: float | None  #: None: stopped at the time limit
    peak_rss: int = 0  #: bytes: the process tree's PSS, at least the main process's RSS
    failed: str = ""  #: stderr tail when the command failed


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                found += [int(x) for x in handle.read().split()]
        except OSError:
            continue
    return found


def _memory_of(pid: int) -> int:
    """Proportional set size: pages shared with forked workers are counted once overall,
    so a tree of processes is not charged several times for the same memory. Falls back
    to RSS where smaps_rollup is not available."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open(f"/proc/{pid}/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _tree_memory(root: int) -> int:
    total = 0
    pending = [root]
    while pending:
        pid = pending.pop()
        total += _memory_of(pid)
        pending += _children(pid)
    return total


def run_command(
    command: list[str],
    cwd: Path,
    limit: float,
    env: dict[str, str],
    sample_memory: bool = False,
) -> Sample:
    """Run `command`, timing it; with `sample_memory`, also sample its process tree's PSS
    (reading smaps_rollup of every process 20 times a second costs real CPU time on a
    2-core machine, more for tools with worker processes, so timed runs do not sample)."""
    start = time.perf_counter()
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # so a run past the limit can be stopped with its children
    )
    peak = 0
    done = threading.Event()
    errors: list[bytes] = []

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.05):
            peak = max(peak, _tree_memory(process.pid))

    def drain() -> None:
        assert process.stderr is not None
        errors.append(process.stderr.read())

    threads = [threading.Thread(target=drain, daemon=True)]
    if sample_memory:
        threads.append(threading.Thread(target=sample, daemon=True))
    for thread in threads:
        thread.start()
    status, usage = 0, None
    while True:  # wait4 (not Popen.wait) to get the main process's own maximum RSS
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() - start > limit:
            os.killpg(process.pid, signal.SIGKILL)
            os.wait4(process.pid, 0)
            process.returncode = -9
            done.set()
            for thread in threads:
                thread.join()
            return Sample(None, peak)
        time.sleep(0.005)
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    done.set()
    for thread in threads:
        thread.join()
    peak = max(peak, usage.ru_maxrss * 1024)  # ru_maxrss is in KiB on Linux
    if process.returncode != 0:
        return Sample(seconds, peak, b"".join(errors).decode(errors="replace")[-800:])
    return Sample(seconds, peak)


# -- tools ---------------------------------------------------------------------------------------


@dataclass
class Tool:
    name: str
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)

    def prepare(self, folder: Path) -> None:
        """Make `folder` (a fresh corpus copy) buildable by this tool."""
        if self.name.startswith("kbgen"):
            for part in ("templates", "static"):
                shutil.copytree(REPO / part, folder / part)
            config = (HERE / "config.yaml").read_text("utf-8")
            if self.name == "kbgen":
                config = config.replace("search: true", "search: false")
            (folder / "config.yaml").write_text(config, "utf-8")


def pagefind_binary() -> Path:
    """The Pagefind binary kbgen+search runs (so both search rows use the same one)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from kbgen.search import pagefind_binary as find

    found = find()
    if found is None:
        raise SystemExit("hugo+pagefind needs Pagefind: pip install 'pagefind[bin]'")
    return found


def tools(selected: list[str]) -> dict[str, Tool]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if any(name.startswith("kbgen") for name in selected):
        # The peers are pip-installed, and pip byte-compiles what it installs; kbgen runs
        # from the checkout, so compile it the same way. (Without this, an environment with
        # PYTHONDONTWRITEBYTECODE=1, like these machines, recompiles kbgen on every build.)
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", str(REPO / "kbgen")],
            check=True,
            capture_output=True,
        )
    kbgen = [sys.executable, "-m", "kbgen", "build", "--quiet"]
    found: dict[str, Tool] = {}
    for name in selected:
        if name in ("kbgen", "kbgen+search"):
            found[name] = Tool(name, kbgen, env)
            continue
        if name == "bare-loop":
            bare = [sys.executable, str(HERE / "bare_loop.py"), "--out", "site", "content"]
            found[name] = Tool(name, bare, env)
            continue
        venv = WORK / "venvs" / PEER_VENVS[name][0] / "bin"
        if name == "hugo":
            command = [str(venv / "hugo"), "--quiet", "--logLevel", "error"]
        elif name == "hugo+pagefind":
            # Hugo, then the Pagefind binary kbgen+search runs, over Hugo's whole output
            # (Hugo's pages have no data-pagefind-body, so Pagefind indexes each <body>).
            hugo = shlex.quote(str(venv / "hugo"))
            pagefind = shlex.quote(str(pagefind_binary()))
            script = (
                f"{hugo} --quiet --logLevel error && "
                f"{pagefind} --site public --output-path public/pagefind --quiet"
            )
            command = ["sh", "-c", script]
        elif name.startswith("mkdocs"):
            command = [str(venv / "mkdocs"), "build", "--quiet"]
        else:
            command = [
                str(venv / "pelican"),
                "content",
                "-s",
                "pelicanconf.py",
                "-o",
                "output",
                "-q",
            ]
        found[name] = Tool(name, command, {**os.environ, "PATH": f"{venv}:{os.environ['PATH']}"})
    return found


def pins() -> dict[str, str]:
    found = {}
    for line in (HERE / "requirements-peers.txt").read_text("utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            found[name.strip().lower()] = version.strip()
    return found


def install_peers(selected: list[str]) -> None:
    versions = pins()
    venvs: dict[str, set[str]] = {}
    for name in selected:
        if name in PEER_VENVS:
            venv, packages = PEER_VENVS[name]
            venvs.setdefault(venv, set()).update(packages)
    for venv, packages in sorted(venvs.items()):
        folder = WORK / "venvs" / venv
        wanted = sorted(f"{p}=={versions[p]}" for p in packages)
        stamp = folder / "installed.txt"
        if stamp.exists() and stamp.read_text("utf-8").split() == wanted:
            continue
        print(f"installing {' '.join(wanted)} into {folder.relative_to(REPO)}", file=sys.stderr)
        if folder.exists():
            shutil.rmtree(folder)
        subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
        done = subprocess.run(
            [str(folder / "bin" / "python"), "-m", "pip", "install", "-q", *wanted],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:  # pip's own warnings are shown only when it fails
            print(done.stdout + done.stderr, file=sys.stderr)
            raise SystemExit(f"could not install {' '.join(wanted)}")
        stamp.write_text("\n".join(wanted) + "\n", "utf-8")


def version_of(tool: Tool) -> str:
    """The version of the package that provides the tool, from its environment."""
    if tool.name.startswith("kbgen"):
        done = subprocess.run(
            [sys.executable, "-m", "kbgen", "--version"],
            capture_output=True,
            text=True,
            env=tool.env,
            check=False,
        )
        return done.stdout.strip()
    if tool.name == "bare-loop":
        import markdown

        processes = len(os.sched_getaffinity(0))
        return f"bare loop (Python-Markdown {markdown.__version__}, {processes} processes)"
    python = str(WORK / "venvs" / PEER_VENVS[tool.name][0] / "bin" / "python")
    package = tool.name.split("+")[0]
    if tool.name == "hugo+pagefind":
        done = subprocess.run(
            [str(pagefind_binary()), "--version"], capture_output=True, text=True, check=False
        )
        return f"hugo {version_of(Tool('hugo', [])).split()[-1]} + {done.stdout.strip()}"
    done = subprocess.run(
        [python, "-c", f"import importlib.metadata as m; print(m.version({package!r}))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return f"{package} {done.stdout.strip() or '?'}"


# -- the corpus and its edits ------------------------------------------------------------------


def corpus(flavor: str, pages: int, script: Path) -> Path:
    folder = WORK / "corpus" / f"{flavor}-{pages}"
    if not (folder / ".complete").exists():
        if folder.exists():
            shutil.rmtree(folder)
        subprocess.run(
            [
                sys.executable,
                str(script),
                "--flavor",
                flavor,
                "--pages",
                str(pages),
                "--out",
                str(folder),
            ],
            check=True,
        )
        (folder / ".complete").write_text("", "utf-8")
    return folder


def edited_article(folder: Path) -> Path:
    """The article every tool gets edited: the same slug in every flavor."""
    content = folder / ("docs" if (folder / "mkdocs.yml").exists() else "content")
    candidates = sorted(content.glob("*/*-00000.md"))
    if not candidates:
        raise SystemExit(f"no article *-00000.md under {content}")
    return candidates[EDIT_SLUG_INDEX]


def edit_body(folder: Path, step: int) -> None:
    path = edited_article(folder)
    lines = path.read_text("utf-8").split("\n")
    last = max(
        i
        for i, line in enumerate(lines)
        if line.strip() and not line.startswith(("#", "|", "-", "`"))
    )
    lines[last] += f" Edited {step}."
    path.write_text("\n".join(lines), "utf-8")


def edit_title(folder: Path, step: int) -> None:
    path = edited_article(folder)
    text = path.read_text("utf-8")
    text, count = re.subn(r'(?m)^(title: "[^"\n]*)"$', rf'\1 edited {step}"', text, count=1)
    if count == 0:  # Pelican: "Title: ..." header
        text, count = re.subn(r"(?m)^(Title: .*)$", rf"\1 edited {step}", text, count=1)
    if count == 0:
        raise SystemExit(f"no title line in {path}")
    path.write_text(text, "utf-8")


def folder_size(folder: Path) -> int:
    total = 0
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            total += path.stat().st_size
    return total


# -- measuring ---------------------------------------------------------------------------------


@dataclass
class Result:
    times: dict[str, list[float | None]] = field(default_factory=lambda: {m: [] for m in MEASURES})
    peaks: list[int] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def median(self, measure: str) -> float | None:
        values = self.times[measure]
        if not values or any(v is None for v in values):
            return None
        return statistics.median(v for v in values if v is not None)


#: measure -> the edit made before its build (run in this order on one copy of the corpus)
EDITS: dict[str, Callable[[Path, int], None] | None] = {
    "cold": None,
    "no change": None,
    "body edit": edit_body,
    "title edit": edit_title,
}


class Preparer(Protocol):
    """What can make a copy of the corpus buildable: a `Tool`, or ab.py's checkout."""

    def prepare(self, folder: Path) -> None: ...


def fresh_copy(tool: Preparer, source: Path, folder: Path) -> Path:
    """A new copy of the corpus at `folder`, made buildable by `tool`."""
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(source, folder, ignore=shutil.ignore_patterns(".complete"))
    tool.prepare(folder)
    return folder


def measure_tool(
    tool: Tool, source: Path, scratch: Path, limit: float, result: Result, step: int
) -> None:
    folder = fresh_copy(tool, source, scratch / f"{tool.name}-{step}")
    try:
        for measure, edit in EDITS.items():
            if edit is not None:
                edit(folder, step)
            sample = run_command(tool.command, folder, limit, tool.env)
            result.times[measure].append(sample.seconds)
            if sample.failed:
                result.failures.append(f"{measure}: {sample.failed}")
            if measure == "cold":
                if sample.seconds is None:  # past the limit: the rest would be too
                    for rest in MEASURES[1:]:
                        result.times[rest].append(None)
                    return
                result.sizes.append(folder_size(folder / OUTPUT[tool.name]))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def measure_memory(tool: Tool, source: Path, scratch: Path, limit: float, result: Result) -> None:
    """One more cold build, this one with its process tree's memory sampled."""
    folder = fresh_copy(tool, source, scratch / f"{tool.name}-memory")
    try:
        result.peaks.append(run_command(tool.command, folder, limit, tool.env, True).peak_rss)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_size(
    pages: int, names: list[str], runs: int, limit: float, script: Path
) -> dict[str, Result]:
    chosen = tools(names)
    results = {name: Result() for name in names}
    scratch = WORK / "runs"
    scratch.mkdir(parents=True, exist_ok=True)
    sources = {name: corpus(FLAVOR[name], pages, script) for name in names}
    for step in range(runs):
        order = names[step % len(names) :] + names[: step % len(names)]
        for name in order:
            if step > 0 and results[name].times["cold"] and results[name].times["cold"][0] is None:
                continue  # it did not finish within the limit once; do not wait again
            print(f"  {pages} pages, run {step + 1}/{runs}: {name}", file=sys.stderr, flush=True)
            measure_tool(chosen[name], sources[name], scratch, limit, results[name], step)
    for name in names:
        if results[name].times["cold"] and results[name].times["cold"][0] is None:
            continue  # past the limit: no figure to wait for
        print(f"  {pages} pages, peak memory: {name}", file=sys.stderr, flush=True)
        measure_memory(chosen[name], sources[name], scratch, limit, results[name])
    return results


# -- reporting -----------------------------------------------------------------------------------


def seconds(value: float | None, limit: float) -> str:
    return f"> {limit:.0f} s" if value is None else f"{value:.2f} s"


def megabytes(values: list[int]) -> str:
    return f"{statistics.median(values) / 1e6:,.0f} MB" if values else "-"


def ratio(value: float | None, base: float | None) -> str:
    if value is None or base is None or base == 0:
        return "-"
    return f"{value / base:.2f}x"


def table(pages: int, results: dict[str, Result], limit: float) -> list[str]:
    lines = [
        f"### {pages:,} articles",
        "",
        "| tool | cold | no change | body edit | title edit | peak memory (cold) | output size |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, result in results.items():
        cells = [seconds(result.median(m), limit) for m in MEASURES]
        lines.append(
            f"| {name} | "
            + " | ".join(cells)
            + f" | {megabytes(result.peaks)} | {megabytes(result.sizes)} |"
        )
    for base in ("hugo", "hugo+pagefind", "mkdocs"):
        if base not in results:
            continue
        if base == "hugo+pagefind":  # search against search, measure by measure
            lines += ["", *_search_ratios(results)]
            continue
        lines += ["", f"Ratios to {base}'s cold build (lower is better):", ""]
        lines += [
            "| tool | cold | no change | body edit | title edit | peak memory |",
            "|---|---|---|---|---|---|",
        ]
        base_cold = results[base].median("cold")
        base_peak = statistics.median(results[base].peaks) if results[base].peaks else None
        for name, result in results.items():
            if name == base:
                continue
            cells = [ratio(result.median(m), base_cold) for m in MEASURES]
            peak = statistics.median(result.peaks) if result.peaks else None
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {ratio(peak, base_peak)} |")
    failures = [f"- {name}: {f}" for name, r in results.items() for f in r.failures]
    if failures:
        lines += ["", "Failures:", "", *failures]
    return lines


def _search_ratios(results: dict[str, Result]) -> list[str]:
    """kbgen+search over hugo+pagefind for the same measure (the issue's comparison)."""
    if "kbgen+search" not in results:
        return []
    ours, peer = results["kbgen+search"], results["hugo+pagefind"]
    cells = [ratio(ours.median(m), peer.median(m)) for m in MEASURES]
    peaks = [statistics.median(r.peaks) if r.peaks else None for r in (ours, peer)]
    return [
        "kbgen+search / hugo+pagefind, the same measure (lower is better):",
        "",
        "| cold | no change | body edit | title edit | peak memory |",
        "|---|---|---|---|---|",
        "| " + " | ".join(cells) + f" | {ratio(peaks[0], peaks[1])} |",
    ]


SearchRow = tuple[str, str, float | None, float]


def _search_targets(all_results: dict[int, dict[str, Result]]) -> list[SearchRow]:
    """Issue #17's rows: (label, target, measured ratio or GB, bound)."""
    rows: list[SearchRow] = []
    wanted = ((1000, "body edit", 0.2), (10000, "body edit", 0.1), (1000, "cold", 1.3))
    for pages, measure, bound in wanted:
        results = all_results.get(pages, {})
        if "kbgen+search" in results and "hugo+pagefind" in results:
            ours = results["kbgen+search"].median(measure)
            peer = results["hugo+pagefind"].median(measure)
            value = None if ours is None or not peer else ours / peer
            label = f"{pages:,} articles, kbgen+search {measure} / hugo+pagefind {measure}"
            rows.append((label, f"<= {bound}x", value, bound))
    large = all_results.get(10000, {})
    if "kbgen+search" in large and large["kbgen+search"].peaks:
        gigabytes = statistics.median(large["kbgen+search"].peaks) / 1e9
        rows.append(("10,000 articles, kbgen+search peak memory (GB)", "<= 1.0", gigabytes, 1.0))
    return rows


def targets(all_results: dict[int, dict[str, Result]]) -> list[str]:
    """The issue's targets, checked against this run."""
    lines = ["## Targets", "", "| measure | target | measured | met |", "|---|---|---|---|"]

    def row(label: str, target: str, value: float | None, bound: float) -> None:
        met = "-" if value is None else ("yes" if value <= bound else "**no**")
        unit = "" if "(GB)" in label else "x"
        shown = "-" if value is None else f"{value:.2f}{unit}"
        lines.append(f"| {label} | {target} | {shown} | {met} |")

    small = all_results.get(1000)
    if small and "kbgen" in small and "hugo" in small:
        hugo = small["hugo"].median("cold")
        kb = small["kbgen"]
        for measure, bound in (("cold", 1.2), ("no change", 0.15), ("body edit", 0.2)):
            value = kb.median(measure)
            row(
                f"1,000 articles, kbgen {measure} / Hugo cold",
                f"<= {bound}x",
                None if value is None or not hugo else value / hugo,
                bound,
            )
        bare = small.get("bare-loop")
        floor = bare.median("cold") if bare is not None else None
        if floor is not None and hugo:
            lines.append(
                f"| (for reference) 1,000 articles, bare Python-Markdown loop / Hugo cold | - | "
                f"{floor / hugo:.2f}x | - |"
            )
    large = all_results.get(10000)
    if (
        large
        and "kbgen" in large
        and "hugo" in large
        and large["kbgen"].peaks
        and large["hugo"].peaks
    ):
        value = statistics.median(large["kbgen"].peaks) / statistics.median(large["hugo"].peaks)
        row("10,000 articles, peak memory / Hugo's", "<= 0.2x", value, 0.2)
    for label, target, value, bound in _search_targets(all_results):
        row(label, target, value, bound)
    if small and large and "kbgen" in small and "kbgen" in large:
        for label, get in (
            ("cold time", lambda r: r.median("cold")),
            ("output size", lambda r: statistics.median(r.sizes) if r.sizes else None),
        ):
            a, b = get(small["kbgen"]), get(large["kbgen"])
            row(
                f"10,000 vs 1,000 articles, kbgen {label}",
                "<= 11x",
                None if a is None or b is None or not a else b / a,
                11,
            )
    return lines


def save_results(pages: int, results: dict[str, Result]) -> None:
    folder = WORK / "results"
    folder.mkdir(parents=True, exist_ok=True)
    data = {
        "measured": dt.datetime.now().isoformat(timespec="minutes"),
        "load_average": os.getloadavg(),
        "tools": {name: dataclasses.asdict(result) for name, result in results.items()},
    }
    (folder / f"{pages}.json").write_text(json.dumps(data, indent=1), "utf-8")


def load_results(pages: int) -> tuple[dict[str, Result], str]:
    path = WORK / "results" / f"{pages}.json"
    if not path.is_file():
        raise SystemExit(f"no saved measurements for {pages} pages ({path}); measure them first")
    data = json.loads(path.read_text("utf-8"))
    results = {name: Result(**fields) for name, fields in data["tools"].items()}
    return results, str(data["measured"])


def machine() -> list[str]:
    cpu = "?"
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    system = f"{platform.system()} {platform.release()}"
    return [
        f"- date: {dt.datetime.now().isoformat(timespec='minutes')}",
        f"- machine: {cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}, {system}",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--pages", type=int, nargs="+", default=[1000], help="corpus sizes (default 1000)"
    )
    parser.add_argument(
        "--runs", type=int, default=3, help="repetitions; medians are reported (default 3)"
    )
    parser.add_argument(
        "--limit", type=float, default=600, help="seconds before a build is stopped (default 600)"
    )
    parser.add_argument(
        "--tools",
        default=",".join(ALL_TOOLS),
        help=f"comma-separated subset of {','.join(ALL_TOOLS)}",
    )
    parser.add_argument(
        "--corpus-script", type=Path, default=DEFAULT_CORPUS_SCRIPT, help="path to make_corpus.py"
    )
    parser.add_argument(
        "--skip-install", action="store_true", help="use the peer venvs as they are"
    )
    parser.add_argument(
        "--results", type=Path, default=HERE / "RESULTS.md", help="where to write the report"
    )
    parser.add_argument(
        "--reuse",
        type=int,
        nargs="+",
        default=[],
        metavar="PAGES",
        help="sizes to take from an earlier run's saved measurements (work/results/) instead "
        "of measuring again; the report says when they were measured",
    )
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.tools.split(",") if n.strip()]
    unknown = sorted(set(names) - set(ALL_TOOLS))
    if unknown:
        parser.error(f"unknown tools: {', '.join(unknown)}")
    if not args.corpus_script.is_file():
        parser.error(f"corpus generator not found: {args.corpus_script} (use --corpus-script)")
    if not args.skip_install:
        install_peers(names)
    header = machine()
    load_before = os.getloadavg()
    all_results: dict[int, dict[str, Result]] = {}
    notes: list[str] = []
    for pages in sorted(set(args.pages) | set(args.reuse)):
        if pages in args.reuse:
            all_results[pages], when = load_results(pages)
            notes.append(f"- the {pages:,}-article figures are reused from a run on {when}")
        else:
            all_results[pages] = run_size(pages, names, args.runs, args.limit, args.corpus_script)
            save_results(pages, all_results[pages])
        print("\n".join(table(pages, all_results[pages], args.limit)) + "\n", flush=True)
    load_after = os.getloadavg()
    header.append(
        f"- load average (1, 5, 15 min) before: {' '.join(f'{x:.2f}' for x in load_before)}; "
        f"after: {' '.join(f'{x:.2f}' for x in load_after)}"
    )
    measured = list(dict.fromkeys(name for results in all_results.values() for name in results))
    chosen = tools([name for name in measured if name in ALL_TOOLS])
    versions = [f"- {name}: {version_of(tool)}" for name, tool in chosen.items()]
    report = [
        "# Benchmark results",
        "",
        "Generated by `benchmarks/run.py` "
        f"(`--pages {' '.join(map(str, args.pages))} --runs {args.runs} "
        f"--limit {args.limit:.0f}`); "
        "medians of the runs. `kbgen` builds without the search index (like the peers); "
        "`kbgen+search` also runs Pagefind; `bare-loop` is `bare_loop.py`, the issue's "
        "bare Python loop (read, YAML, Python-Markdown, a trivial template, write; no cache, "
        "so every build is cold). Peak memory is the whole process tree's PSS, "
        "sampled in one extra cold build per tool (timed runs are not sampled).",
        "",
        *header,
        *notes,
        *versions,
        "",
    ]
    for pages, results in all_results.items():
        report += [*table(pages, results, args.limit), ""]
    report += targets(all_results)
    # fresh_clone.py's section (between its markers) is measured separately: keep it.
    old = args.results.read_text("utf-8") if args.results.is_file() else ""
    if "<!-- fresh-clone -->" in old:
        kept = old[old.index("<!-- fresh-clone -->") :].split("<!-- /fresh-clone -->")[0]
        report += ["", kept + "<!-- /fresh-clone -->"]
    args.results.write_text("\n".join(report) + "\n", "utf-8")
    print("\n".join(targets(all_results)))
    print(f"\nwrote {args.results}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
