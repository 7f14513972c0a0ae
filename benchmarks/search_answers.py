"""Issue #17, item 2, on real sites: does the incrementally kept index answer like a full one?

For the repository's own site and the 1,000-article synthetic corpus (run.py's `kb` flavor):
a cold `kbgen build` (which leaves the search records in the cache), then each edit kind in
turn — a one-line body edit adding a new word, a title edit, a new page, a deleted page —
each followed by a warm build (the incremental indexer), and after each, a full index from the
reference build `pipeline.build_site()` into another folder. Both bundles are served on
127.0.0.1 and asked 50 questions (words, phrases, a word with a filter, filters alone, chosen
from the reference's indexed text; tests/browser/pagefind_queries.py) through the real
pagefind.js in headless Chromium. Prints, per site and edit, how many answers differ in their
result set or top-10 order, and whether the two bundles are the same bytes.

    .venv/bin/python benchmarks/search_answers.py [--pages 1000] [--skip-repo]
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(HERE)]

import run  # noqa: E402  (benchmarks/run.py: the corpus and its edits)
from browser.conftest import CHROMIUM, CHROMIUM_ARGS, serve_folder  # noqa: E402
from browser.pagefind_queries import ask, choose_queries, differences  # noqa: E402
from playwright.sync_api import Page, sync_playwright  # noqa: E402

from kbgen.incremental import Builder  # noqa: E402
from kbgen.pipeline import BuildOptions, build_site  # noqa: E402

TODAY = dt.date(2026, 12, 2)
NEW_WORD = "quizzaciously"  #: a word no site has before the body edit


def repository_project(scratch: Path) -> Path:
    folder = scratch / "repo"
    for part in ("content", "templates", "static"):
        shutil.copytree(REPO / part, folder / part)
    shutil.copy(REPO / "config.yaml", folder / "config.yaml")
    return folder


def corpus_project(scratch: Path, pages: int, script: Path) -> Path:
    source = run.corpus("kb", pages, script)
    return run.fresh_copy(run.tools(["kbgen+search"])["kbgen+search"], source,
                          scratch / f"corpus-{pages}")


def first_article(folder: Path) -> Path:
    return sorted(p for p in (folder / "content").glob("*/*.md") if p.name != "_index.md")[0]


def edit_body(folder: Path) -> str:
    path = first_article(folder)
    path.write_text(path.read_text("utf-8").rstrip("\n") + f" A {NEW_WORD} sentence.\n",
                    "utf-8")
    return NEW_WORD


def _retitle(text: str, title: str) -> str:
    lines = text.split("\n")
    number = next(i for i, line in enumerate(lines) if line.startswith("title:"))
    lines[number] = f'title: "{title}"'
    return "\n".join(lines)


def edit_title(folder: Path) -> str:
    path = first_article(folder)
    path.write_text(_retitle(path.read_text("utf-8"), "Zanzibarian retitled page"), "utf-8")
    return "zanzibarian"


ADDED = "xylophonic-new-page.md"


def add_page(folder: Path) -> str:
    """A copy of the second article under a new name, title and closing sentence."""
    source = sorted(p for p in (folder / "content").glob("*/*.md") if p.name != "_index.md")[1]
    text = _retitle(source.read_text("utf-8"), "Xylophonic new page").rstrip("\n")
    (source.parent / ADDED).write_text(text + " A xylophonic sentence.\n", "utf-8")
    return "xylophonic"


def delete_page(folder: Path) -> str:
    """Delete the page add_page made: its word must then find nothing."""
    next((folder / "content").glob(f"*/{ADDED}")).unlink()
    return "xylophonic"


EDITS: list[tuple[str, Callable[[Path], str]]] = [
    ("body edit", edit_body), ("title edit", edit_title), ("new page", add_page),
    ("deleted page", delete_page),
]


def same_bytes(a: Path, b: Path) -> bool:
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    return files_a == files_b and all((a / f).read_bytes() == (b / f).read_bytes()
                                      for f in files_a)


def check_site(name: str, folder: Path, page: Page) -> bool:
    config = folder / "config.yaml"
    cold = Builder(config, BuildOptions(today=TODAY)).build()
    if not cold.ok:
        raise SystemExit("\n".join(d.format() for d in cold.diagnostics))
    ok = True
    for kind, edit in EDITS:
        word = edit(folder)
        warm = Builder(config, BuildOptions(today=TODAY)).build()  # a fresh `kbgen build`
        full = folder.parent / f"{folder.name}-full"
        shutil.rmtree(full, ignore_errors=True)
        reference = build_site(config, BuildOptions(output=full, today=TODAY))
        if not (warm.ok and reference.ok):
            raise SystemExit(f"{name} {kind}: a build failed")
        full_url, full_server = serve_folder(full)
        warm_url, warm_server = serve_folder(folder / "site")
        try:
            queries = choose_queries(page, full_url, must_include=(word,))
            expected = ask(page, full_url, queries)
            lines = differences(queries, expected, ask(page, warm_url, queries))
        finally:
            for server in (full_server, warm_server):
                server.shutdown()
                server.server_close()
        identical = same_bytes(folder / "site" / "pagefind", full / "pagefind")
        print(f"{name:>14} | {kind:<12} | {warm.pages:>5} pages | {len(queries)} queries | "
              f"{len(queries) - len(lines)} same set and top 10 | {len(lines)} differ | "
              f"bundle {'byte-identical' if identical else 'DIFFERENT bytes'}", flush=True)
        for line in lines:
            print("    " + line)
        ok = ok and not lines
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=1000, help="corpus size (default 1000)")
    parser.add_argument("--skip-repo", action="store_true", help="only the synthetic corpus")
    parser.add_argument("--corpus-script", type=Path, default=run.DEFAULT_CORPUS_SCRIPT)
    args = parser.parse_args(argv)
    ok = True
    with tempfile.TemporaryDirectory(prefix="kbgen-answers-") as tmp, sync_playwright() as pw:
        scratch = Path(tmp)
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        if not args.skip_repo:
            ok = check_site("repository", repository_project(scratch), page) and ok
        corpus = corpus_project(scratch, args.pages, args.corpus_script)
        ok = check_site(f"{args.pages:,} articles", corpus, page) and ok
        browser.close()
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
