#!/usr/bin/env python3
"""Compare two checkouts of kbgen on the same corpus, interleaved, on this machine.

    .venv/bin/python benchmarks/ab.py --pages 1000 --rounds 8 old=../old-checkout new=.
    .venv/bin/python benchmarks/ab.py --pages 10000 --rounds 1 --cold-only --memory old=... new=.
    .venv/bin/python benchmarks/ab.py --theme old ...   # both sides build old's templates
    .venv/bin/python benchmarks/ab.py --rounds 0 --instructions old=... new=.   # callgrind

A refactor is judged by "no speed regression beyond noise, measured A/B, interleaved, on the
same machine" (issue #15's acceptance). `run.py` measures one checkout against the peers; this
script measures two checkouts against each other: each round builds a fresh copy of the corpus
with side A and then side B (the order alternates between rounds, so drift in the machine's load
spreads over both), taking the same four measures as run.py (cold, no change, body edit, title
edit). It prints the medians and the change in per cent, and with --memory one more cold build
per side with its process tree's peak memory sampled. With --instructions it also counts the
instructions each side's no-change, body-edit and title-edit builds execute (valgrind's
callgrind over the whole process tree, one job): wall-clock medians of the same code move by
several per cent between runs on a shared machine, instruction counts by a few tenths of a per
cent, so a 5% verdict is read from them (each counted build runs ~50x slower than a timed one).

Each side is a checkout folder (a `git worktree add --detach ../old REV` is the easy way): its
`kbgen/` is put on PYTHONPATH, so both sides run under this script's Python and libraries. By
default each side builds with its own `templates/` and `static/` (the code plus the theme it
ships); `--theme NAME` makes both sides build with NAME's theme, which separates the cost of
the code from the cost of what the templates ask it to draw, when the other side's code can
build that theme. Search is off (Pagefind's time is the same binary on both sides).
Like run.py this is not a test, and the figures depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402  (benchmarks/run.py: the corpus, the edits and the timed runs)

from kbgen.incremental.stamps import RACY_NS  # noqa: E402  (this checkout's racy-stamp window)

MEASURES = run.MEASURES


@dataclass(frozen=True)
class Side:
    """One checkout to measure: `name=folder` on the command line."""

    name: str
    root: Path
    theme: Path  # the checkout whose templates/ and static/ this side builds with

    def env(self) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": str(self.root)}

    def prepare(self, folder: Path) -> None:
        for part in ("templates", "static"):
            shutil.copytree(self.theme / part, folder / part)
        config = (HERE / "config.yaml").read_text("utf-8").replace("search: true", "search: false")
        (folder / "config.yaml").write_text(config, "utf-8")


def parse_side(text: str) -> tuple[str, Path]:
    name, sep, folder = text.partition("=")
    root = Path(folder).resolve()
    if not sep or not name or not (root / "kbgen" / "__init__.py").exists():
        raise argparse.ArgumentTypeError(f"expected NAME=CHECKOUT with a kbgen/ inside: {text!r}")
    return name, root


def build(side: Side, folder: Path, limit: float, memory: bool = False) -> run.Sample:
    command = [sys.executable, "-m", "kbgen", "build", "--quiet"]
    sample = run.run_command(command, folder, limit, side.env(), memory)
    if sample.failed:
        raise SystemExit(f"{side.name} failed to build {folder}:\n{sample.failed}")
    return sample


def one_round(
    side: Side, source: Path, scratch: Path, step: int, limit: float, cold_only: bool
) -> dict[str, float]:
    folder = run.fresh_copy(side, source, scratch / f"{side.name}-{step}")
    times: dict[str, float] = {}
    try:
        for measure, edit in run.EDITS.items():
            if cold_only and measure != "cold":
                break
            if edit is not None:
                edit(folder, step)
            seconds = build(side, folder, limit).seconds
            assert seconds is not None, f"{side.name} {measure} ran past {limit} s"
            times[measure] = seconds
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return times


def peak_memory(side: Side, source: Path, scratch: Path, limit: float) -> int:
    folder = run.fresh_copy(side, source, scratch / f"{side.name}-memory")
    try:
        return build(side, folder, limit, memory=True).peak_rss
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def instructions(side: Side, source: Path, scratch: Path, limit: float) -> dict[str, int]:
    """Instructions executed by the no-change, body-edit and title-edit builds of one copy of
    the corpus (the same edits on both sides), after an uncounted cold build and an uncounted
    first edit (which does once-per-cache work, such as compiling templates' bytecode)."""
    if shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind (apt install valgrind)")
    folder = run.fresh_copy(side, source, scratch / f"{side.name}-instructions")
    counts: dict[str, int] = {}
    try:
        time.sleep(RACY_S)
        build(side, folder, limit)
        run.edit_body(folder, 1000)
        time.sleep(RACY_S)
        build(side, folder, limit)
        for measure, edit in run.EDITS.items():
            if measure == "cold":
                continue  # ~50x a cold build: minutes per side
            if edit is not None:
                edit(folder, 1001)
            time.sleep(RACY_S)
            counts[measure] = counted_build(side, folder, limit * 100)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return counts


#: kbgen re-reads a file written less than RACY_NS before the previous build's scan (its stamp
#: cannot prove it unchanged); each counted build waits a little longer after the last write,
#: so no count depends on how fast the build before it was
RACY_S = RACY_NS / 1e9 + 0.1


def counted_build(side: Side, folder: Path, limit: float) -> int:
    """Instructions (Ir) of one `kbgen build --jobs 1` and every process it starts (a fixed
    string-hash seed, so set and dict orders, and the work that follows them, repeat)."""
    out = folder.parent / f"{folder.name}.callgrind"
    out.mkdir()
    try:
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--trace-children=yes",
                f"--callgrind-out-file={out}/cg.%p",
                sys.executable,
                "-m",
                "kbgen",
                "build",
                "--quiet",
                "--jobs",
                "1",
            ],
            cwd=folder,
            env={**side.env(), "PYTHONHASHSEED": "0"},
            check=True,
            capture_output=True,
            timeout=limit,
        )
        return sum(_summary(path) for path in out.iterdir())
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _summary(path: Path) -> int:
    for line in path.read_text("utf-8", "replace").splitlines():
        if line.startswith("summary:"):
            return int(line.split()[1])
    return 0


def load_average() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sides", nargs=2, type=parse_side, metavar="NAME=CHECKOUT")
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--cold-only", action="store_true", help="time only the cold build")
    parser.add_argument("--memory", action="store_true", help="one more cold build, memory sampled")
    parser.add_argument("--theme", help="build both sides with this side's templates and static")
    parser.add_argument(
        "--instructions", action="store_true", help="count the edit builds' instructions (valgrind)"
    )
    parser.add_argument(
        "--limit", type=float, default=900.0, help="seconds before a build is stopped"
    )
    parser.add_argument("--corpus-script", type=Path, default=run.DEFAULT_CORPUS_SCRIPT)
    args = parser.parse_args(argv)

    named = dict(args.sides)
    if args.theme is not None and args.theme not in named:
        parser.error(f"--theme must name a side: {', '.join(named)}")
    sides = [Side(n, r, named[args.theme] if args.theme else r) for n, r in args.sides]
    for side in sides:  # byte-compile each checkout once, as run.py does, so no build pays for it
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", str(side.root / "kbgen")],
            check=True,
            capture_output=True,
        )
    source = run.corpus("kb", args.pages, args.corpus_script)
    scratch = run.WORK / "ab"
    scratch.mkdir(parents=True, exist_ok=True)
    times: dict[str, dict[str, list[float]]] = {s.name: {m: [] for m in MEASURES} for s in sides}
    load_before = load_average()
    for step in range(args.rounds):
        for side in sides if step % 2 == 0 else sides[::-1]:
            print(f"  round {step + 1}/{args.rounds}: {side.name}", file=sys.stderr, flush=True)
            for measure, seconds in one_round(
                side, source, scratch, step, args.limit, args.cold_only
            ).items():
                times[side.name][measure].append(seconds)
    peaks: dict[str, int] = {}
    if args.memory:
        peaks = {s.name: peak_memory(s, source, scratch, args.limit) for s in sides}
    if args.rounds or peaks:
        print_table(sides, times, peaks, args, load_before)
    if args.instructions:
        counts = {s.name: instructions(s, source, scratch, args.limit) for s in sides}
        print_counts(sides, counts)
    return 0


def print_table(
    sides: list[Side],
    times: dict[str, dict[str, list[float]]],
    peaks: dict[str, int],
    args: argparse.Namespace,
    load_before: str,
) -> None:
    a, b = sides[0].name, sides[1].name
    theme = f"{args.theme}'s theme on both sides" if args.theme else "each side's own theme"
    print(
        f"\n{args.pages:,} articles, {args.rounds} interleaved rounds, {theme}, "
        f"load {load_before} -> {load_average()}"
    )
    print(f"| measure | {a} | {b} | change |")
    print("|---|---|---|---|")
    for measure in MEASURES:
        if not times[a][measure]:
            continue
        old, new = statistics.median(times[a][measure]), statistics.median(times[b][measure])
        print(f"| {measure} | {old * 1000:,.0f} ms | {new * 1000:,.0f} ms | {change(old, new)} |")
    if peaks:
        old_peak, new_peak = peaks[a] / 1e6, peaks[b] / 1e6
        relative = change(old_peak, new_peak)
        print(f"| peak memory, cold | {old_peak:,.0f} MB | {new_peak:,.0f} MB | {relative} |")


def print_counts(sides: list[Side], counts: dict[str, dict[str, int]]) -> None:
    a, b = sides[0].name, sides[1].name
    print("\ninstructions executed (callgrind, --jobs 1, the same edits on both sides)")
    print(f"| measure | {a} | {b} | change |")
    print("|---|---|---|---|")
    for measure, old in counts[a].items():
        new = counts[b][measure]
        print(f"| {measure} | {old / 1e6:,.1f} M | {new / 1e6:,.1f} M | {change(old, new)} |")


def change(old: float, new: float) -> str:
    return f"{(new - old) / old * 100:+.1f}%"


if __name__ == "__main__":
    raise SystemExit(main())
