#!/usr/bin/env python3
"""The floor of any Python-Markdown site generator: the issue's "bare Python loop".

    python benchmarks/bare_loop.py [--jobs N] [--out site] [content]

Read each article, `yaml.safe_load` its front matter (the C loader when available),
convert its body with Python-Markdown and the extensions the speed issue lists (toc,
tables, fenced_code, codehilite, footnotes, attr_list, admonition), fill a trivial Jinja2
template and write the page: nothing else (no links, no listings, no cache). The files are
split evenly across `--jobs` forked processes (default: the CPUs available).

benchmarks/run.py runs it as the tool "bare-loop" on the kb corpus, beside kbgen and the
peers, so every results table shows how close the floor set by Python-Markdown itself is
to Hugo on the same machine at the same moment. It rebuilds everything every time.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
from pathlib import Path

import jinja2
import markdown
import yaml

LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
EXTENSIONS = ["toc", "tables", "fenced_code", "codehilite", "footnotes", "attr_list", "admonition"]
TEMPLATE = "<!doctype html>\n<title>{{ title }}</title>\n<main>{{ body }}</main>\n"


def build(files: list[Path], content: Path, out: Path) -> None:
    converter = markdown.Markdown(extensions=EXTENSIONS)
    template = jinja2.Template(TEMPLATE)
    for path in files:
        _, front, body = path.read_text("utf-8").split("---\n", 2)
        meta = yaml.load(front, Loader=LOADER)
        converter.reset()
        page = template.render(title=meta["title"], body=converter.convert(body))
        target = (out / path.relative_to(content)).with_suffix(".html")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(page, "utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("content", nargs="?", default="content", type=Path)
    parser.add_argument("--out", default="site", type=Path)
    parser.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args(argv)
    files = sorted(args.content.rglob("*.md"))
    shares = [files[i :: args.jobs] for i in range(args.jobs)]
    with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
        pool.starmap(build, [(share, args.content, args.out) for share in shares])
    print(f"{len(files)} pages -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
