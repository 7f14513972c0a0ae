#!/usr/bin/env python3
"""Under `kbgen serve`, how long from saving a new word until a reader can find it?

Issue #17's target: a saved word is findable in search at most 2 s after the save at 1,000
articles and 5 s at 10,000. For each trial this script writes a word no page has into one
article's prose (as an editor saves), then polls the *served* search index over HTTP, as the
browser's pagefind.js would read it — pagefind-entry.json, then the language's meta file, then
the index chunk whose word range holds the word — every 50 ms until the word is in that chunk.
The figure includes the rebuild, serve's pause before re-indexing (`SEARCH_DELAY_S`) and the
re-index itself.

Corpora and server start as in serve_latency.py (its helpers are reused: the kb flavor of
make_corpus.py with benchmarks/config.yaml, search on).

    .venv/bin/python benchmarks/serve_findable.py --sizes 1000 --trials 5
    .venv/bin/python benchmarks/serve_findable.py --sizes 10000 --trials 3

A measurement, not a test: it prints figures and never fails on a slow result.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import serve_latency as sl  # noqa: E402

from kbgen.search import SIGNATURE, cbor_decode  # noqa: E402

POLL_S = 0.05
FINDABLE_TIMEOUT_S = 300.0


def served(port: int, path: str) -> object:
    """A served Pagefind index file, decoded (gzip, signature, CBOR)."""
    status, body = sl.http_get(port, path)
    if status != 200:
        raise LookupError(f"{path}: HTTP {status}")
    raw = gzip.decompress(body)
    if not raw.startswith(SIGNATURE):
        raise ValueError(f"{path}: not a Pagefind file")
    return cbor_decode(raw[len(SIGNATURE) :])[0]


def findable(port: int, word: str) -> bool:
    """Is `word` in the chunk of the served index that would hold it? (False while the
    index is being replaced between two reads: the entry named a meta file now gone.)"""
    try:
        return _findable(port, word)
    except LookupError:
        return False


def _findable(port: int, word: str) -> bool:
    status, body = sl.http_get(port, "/pagefind/pagefind-entry.json")
    if status != 200:
        return False
    entry = json.loads(body)
    for info in entry["languages"].values():
        meta = served(port, f"/pagefind/pagefind.{info['hash']}.pf_meta")
        assert isinstance(meta, list)
        for first, last, name in meta[2]:
            if first <= word[: len(first)] and word[: len(last)] <= last:
                chunk = served(port, f"/pagefind/index/{name}.pf_index")
                assert isinstance(chunk, list)
                if any(entry[0] == word for entry in chunk[0]):
                    return True
    return False


def new_word(trial: int) -> str:
    """A made-up word no stemmer shortens: letters for the trial's digits between 'zqx' and
    'vk' (no English suffix), so it is indexed as written."""
    return "zqx" + "".join("bcdfghjlmn"[int(d)] for d in str(trial)) + "vk"


def add_word(source: Path, word: str) -> None:
    text = source.read_text("utf-8").rstrip("\n")
    with source.open("w", encoding="utf-8") as handle:  # in place, like most editors
        handle.write(f"{text} A {word} sentence.\n")


def measure(size: str, trials: int, pause: float) -> tuple[list[float], float]:
    corpus = sl.prepare("kbgen", size)
    original = corpus.source.read_bytes()
    results: list[float] = []
    try:
        with sl.launched(corpus, "findable") as (server, started):
            deadline = time.monotonic() + sl.START_TIMEOUT
            while time.monotonic() < deadline:  # the session's first index (a full run)
                if sl.http_get(server.port, "/pagefind/pagefind-entry.json")[0] == 200:
                    break
                time.sleep(0.2)
            time.sleep(pause)
            for trial in range(1, trials + 1):
                word = new_word(trial)
                begun = time.perf_counter()
                add_word(corpus.source, word)
                while not findable(server.port, word):
                    if time.perf_counter() - begun > FINDABLE_TIMEOUT_S:
                        raise RuntimeError(f"{word} not findable after {FINDABLE_TIMEOUT_S} s")
                    time.sleep(POLL_S)
                results.append(time.perf_counter() - begun)
                print(f"  {size} articles, trial {trial}: {results[-1]:.2f} s", flush=True)
                time.sleep(pause)
    finally:
        corpus.source.write_bytes(original)
    return results, started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000", help="comma-separated: repo, 1000, 10000")
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--pause", type=float, default=3.0, help="seconds between trials")
    args = parser.parse_args(argv)
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for size in args.sizes.split(","):
        times, started = measure(size.strip(), args.trials, args.pause)
        print(f"{size} articles: save -> findable median {statistics.median(times):.2f} s, "
              f"min {min(times):.2f} s, max {max(times):.2f} s over {len(times)} trials "
              f"(server start {started:.1f} s)")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
