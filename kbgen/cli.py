"""Command line: `build`, `check`, `new`, `serve`.

Exit codes: 0 success; 1 content errors (diagnostics printed as `path:line:col: error: ...`);
2 usage or config errors; 3 an internal bug (traceback plus a request to report it).
A user mistake never prints a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from kbgen import __version__
from kbgen.config import load_config
from kbgen.diagnostics import (
    did_you_mean,
    format_json,
    format_text,
    promote_warnings,
    sorted_diagnostics,
)
from kbgen.incremental import Builder
from kbgen.incremental.sealing import key_notice
from kbgen.model import slugify
from kbgen.pipeline import BuildOptions, BuildResult

if TYPE_CHECKING:
    from kbgen.readability import ArticleReadability

EXIT_OK, EXIT_CONTENT, EXIT_USAGE, EXIT_BUG, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

BUILD_EXAMPLES = """examples:
  python build.py build                      build ./config.yaml's project into site/
  python build.py build --strict             fail on warnings too (for CI)
  python build.py build -v                   show what was reused and per-stage timings
  python build.py build --jobs 1             one process (the output is the same)
  python build.py build --drafts --output /tmp/preview
  kbgen build --config ../other-kb/config.yaml
"""
CHECK_EXAMPLES = """examples:
  python build.py check                      validate everything, write nothing
  python build.py check --strict             warnings count as errors
  python build.py check --format json        machine-readable diagnostics for editors/CI
"""
NEW_EXAMPLES = """examples:
  python build.py new side-effects "Hiccups"     -> content/side-effects/hiccups.md
  python build.py new mechanism "Sigma-1 receptors"
"""
SERVE_EXAMPLES = """examples:
  python build.py serve                      preview on http://127.0.0.1:8000/
  python build.py serve --port 0 --open      any free port, open a browser tab
  python build.py serve --poll               for network drives and containers
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kbgen",
        description="Build, check and preview the ketamine-kb knowledge base.",
        epilog="Run 'kbgen COMMAND --help' for a command's options and examples.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"kbgen {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, summary: str, examples: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            help=summary,
            description=summary,
            epilog=examples,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.add_argument(
            "--config",
            type=Path,
            default=Path("config.yaml"),
            help="config file; its folder is the project root (default: ./config.yaml)",
        )
        return sub

    build = command("build", "Build the site into the output folder.", BUILD_EXAMPLES)
    build.add_argument("--strict", action="store_true", help="treat warnings as errors")
    build.add_argument("--drafts", action="store_true", help="include pages marked draft: true")
    build.add_argument("--output", type=Path, help="output folder (overrides output_dir)")
    build.add_argument("--no-search", action="store_true", help="skip the Pagefind index")
    build.add_argument(
        "--jobs",
        "-j",
        type=_positive_int,
        default=None,
        metavar="N",
        help="worker processes for cold builds (default: the CPUs available; output is "
        "identical for any N)",
    )
    noise = build.add_mutually_exclusive_group()
    noise.add_argument("--quiet", "-q", action="store_true", help="print only problems")
    noise.add_argument(
        "--verbose",
        "-v",
        action="store_true",
        help="also print what was reused and per-stage timings",
    )

    check = command(
        "check", "Validate content, links, citations and templates; write nothing.", CHECK_EXAMPLES
    )
    check.add_argument("--strict", action="store_true", help="treat warnings as errors")
    check.add_argument("--drafts", action="store_true", help="also check pages marked draft")
    check.add_argument(
        "--format", choices=("text", "json"), default="text", help="output format (default: text)"
    )

    new = command("new", "Create a new article with valid front matter.", NEW_EXAMPLES)
    new.add_argument("section", help="section id from config.yaml, e.g. side-effects")
    new.add_argument("title", help="the article title, in quotes")

    serve = command(
        "serve", "Build, serve and live-reload the site while you edit.", SERVE_EXAMPLES
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument(
        "--port", type=_port, default=8000, help="port (default 8000; 0 = any free)"
    )
    serve.add_argument("--open", action="store_true", help="open the site in a browser")
    serve.add_argument(
        "--poll", action="store_true", help="poll for changes (network drives, containers)"
    )
    serve.add_argument("--no-drafts", action="store_true", help="hide pages marked draft")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        if args.command == "build":
            return _build(args)
        if args.command == "check":
            return _check(args)
        if args.command == "new":
            return _new(args)
        if args.command == "serve":
            from kbgen.serve import run_serve  # imported lazily: only serve needs it

            return run_serve(args)
    except KeyboardInterrupt:
        print("interrupted; the previous site was left unchanged", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if _search_failed(exc):
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_CONTENT
        import traceback  # here: only a crash prints one

        traceback.print_exc()
        print(
            f"\nkbgen {__version__}: this is a bug in kbgen, not a problem with your "
            "content. Please report it with the traceback above.",
            file=sys.stderr,
        )
        return EXIT_BUG
    return EXIT_USAGE  # pragma: no cover - argparse rejects unknown commands


def _search_failed(exc: Exception) -> bool:
    """Whether `exc` is Pagefind's failure (kbgen.search is imported only by builds that
    index, so that a no-change build starts quicker: not imported, it cannot be one)."""
    search = sys.modules.get("kbgen.search")
    return search is not None and isinstance(exc, search.SearchIndexError)


def print_diagnostics(result: BuildResult) -> None:
    if result.diagnostics:
        print(format_text(result.diagnostics), file=sys.stderr)


def print_key_notice() -> None:
    """Why the build cache will not last past this run, if so: a note about the machine, not
    the content, so it is not one of the build's warnings (--strict does not fail on it)."""
    notice = key_notice()
    if notice is not None:
        print(notice.format(), file=sys.stderr)


def exit_code(result: BuildResult) -> int:
    if result.config_failed:
        return EXIT_USAGE
    return EXIT_OK if result.ok else EXIT_CONTENT


def _build(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    bar = ProgressBar(sys.stderr) if not args.quiet and sys.stderr.isatty() else None
    options = BuildOptions(
        drafts=args.drafts,
        strict=args.strict,
        output=args.output,
        search=False if args.no_search else None,
        jobs=args.jobs,
        progress=bar,
    )
    # One build, then the process ends: the builder pauses the cyclic collector while it
    # works, and re-enabling it afterwards would only buy one pass over the whole heap
    # (~30 ms after 1,000 pages) just before exit_now() discards it.
    gc.disable()
    builder = Builder(args.config, options)
    try:
        return _build_and_report(builder, args, bar, start)
    except KeyboardInterrupt:
        replaced = builder.replaced_output()
        if replaced is None:
            raise
        print(f"interrupted; the new site was already in place in {replaced}", file=sys.stderr)
        return EXIT_INTERRUPTED


def _build_and_report(
    builder: Builder, args: argparse.Namespace, bar: ProgressBar | None, start: float
) -> int:
    try:
        result = builder.build()
    finally:
        if bar is not None:
            bar.close()
    print_diagnostics(result)
    print_key_notice()
    elapsed = time.perf_counter() - start
    if args.verbose:
        _print_build_details(result)
    if not result.ok:
        if not result.config_failed:
            print(
                f"Build failed: {result.errors} error(s), {result.warnings} warning(s); "
                "nothing was written, the previous site is unchanged.",
                file=sys.stderr,
            )
        return exit_code(result)
    if not args.quiet:
        changed = len(result.written.changed) + len(result.written.removed) if result.written else 0
        print(
            f"Built {result.pages} pages in {elapsed:.2f} s ({result.warnings} warnings; "
            f"{changed} files changed) -> {result.output_dir}"
        )
    return EXIT_OK


def _print_build_details(result: BuildResult) -> None:
    """`--verbose`: what kind of build ran, what it reused, and where the time went."""
    how = {
        "cold": "cold build (no usable previous build)",
        "warm": "incremental build",
        "unchanged": "nothing changed since the last build",
    }[result.mode]
    print(
        f"  {how}: {len(result.rendered)} nodes rendered, {result.converted} Markdown "
        f"conversions, {result.resolved} pages resolved, {result.workers} process(es)",
        file=sys.stderr,
    )
    for stage, seconds in result.timings.items():
        print(f"  {stage:<10} {seconds * 1000:8.1f} ms", file=sys.stderr)
    for note in result.notes:
        print(f"  note: {note}", file=sys.stderr)
    if result.converted:  # Markdown ran: say whether the verified shortcuts did
        from kbgen import speedups

        print(f"  {speedups.status()}", file=sys.stderr)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port: use 0-65535 (0 = any free)")
    return value


class ProgressBar:
    """A one-line progress bar on a terminal, shown only once a build has run a while.

    Builds shorter than `delay` seconds print nothing; updates are throttled; `close`
    erases the line so diagnostics and the summary start on a clean line.
    """

    def __init__(self, stream: TextIO, delay: float = 1.5, width: int = 30) -> None:
        self.stream = stream
        self.delay = delay
        self.width = width
        self.started = time.monotonic()
        self._last = 0.0
        self._shown = False

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.started < self.delay or (now - self._last < 0.1 and done < total):
            return
        self._last = now
        filled = self.width * done // total if total else self.width
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(f"\r{stage:<8} [{bar}] {done}/{total}\x1b[K")
        self.stream.flush()
        self._shown = True

    def close(self) -> None:
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False


def _check(args: argparse.Namespace) -> int:
    options = BuildOptions(drafts=args.drafts, strict=args.strict, write=False, search=False)
    builder = Builder(args.config, options)
    result = builder.build()
    figures = _readability(builder, result, args.strict)
    if args.format == "json":
        payload = json.loads(format_json(result.diagnostics))
        if figures is not None:
            payload["readability"] = [figure.to_json() for figure in figures]
        print(json.dumps(payload, indent=2, ensure_ascii=False))
    else:
        print_diagnostics(result)
        if result.ok:
            print(f"Checked {result.pages} pages: no errors ({result.warnings} warnings).")
        elif not result.config_failed:
            print(
                f"Check failed: {result.errors} error(s), {result.warnings} warning(s).",
                file=sys.stderr,
            )
    return exit_code(result)


#: `new` keeps file names readable: a long title gives a slug cut at a word boundary.
NEW_SLUG_LENGTH = 80


def slug_for_title(title: str) -> str:
    slug = slugify(title)
    if len(slug) <= NEW_SLUG_LENGTH:
        return slug
    cut = slug[: NEW_SLUG_LENGTH + 1].rpartition("-")[0]
    return cut or slug[:NEW_SLUG_LENGTH]


def _readability(
    builder: Builder, result: BuildResult, strict: bool
) -> list[ArticleReadability] | None:
    """Reading grades when config.yaml asks for them: figures, and warnings added to
    `result` (errors under --strict). Only `check` measures: builds and serve stay fast."""
    if result.config_failed:
        return None
    config, _ = load_config(builder.config_path)
    if config is None or config.readability is None:
        return None
    if builder.index is None:  # "nothing changed" skipped loading: load without rendering
        builder.warm_up()
    if builder.index is None:
        return None
    from kbgen.readability import measure_site, readability_warnings

    figures = measure_site(builder.index, config)
    found = readability_warnings(builder.index, figures, config.readability)
    result.diagnostics = sorted_diagnostics(
        result.diagnostics + (promote_warnings(found) if strict else found)
    )
    return figures


def _new(args: argparse.Namespace) -> int:
    config, diagnostics = load_config(args.config)
    if config is None:
        print(format_text(diagnostics), file=sys.stderr)
        return EXIT_USAGE
    section = config.section(args.section)
    if section is None:
        ids = [s.id for s in config.sections]
        hint = did_you_mean(args.section, ids) or f"sections: {', '.join(ids)}"
        print(f"error: unknown section '{args.section}'\n  hint: {hint}", file=sys.stderr)
        return EXIT_USAGE
    title = " ".join(args.title.split())
    slug = slug_for_title(title)
    if not slug:
        print(
            "error: the title has no letters or digits to make a file name from\n"
            '  hint: give a title such as "Hiccups"',
            file=sys.stderr,
        )
        return EXIT_USAGE
    existing = sorted(config.content_dir.glob(f"*/{slug}.md"))
    if existing:
        shown = config.rel(existing[0])
        print(
            f"error: {shown} already exists; nothing was written\n"
            f"  hint: edit that file, or choose another title",
            file=sys.stderr,
        )
        return EXIT_CONTENT
    target = config.content_dir / section.id / f"{slug}.md"
    lines = [
        "---",
        f"title: {_yaml_string(title)}",
        'summary: "TODO: one sentence for listings."',
        'in_short: "TODO: two to four short, plain sentences that a reader sees first."',
        f"last_reviewed: {dt.date.today().isoformat()}",
        "tags: []",
        "draft: true",
    ]
    for spec in section.fields:
        if spec.type == "enum":
            lines.append(
                f"{spec.name}: {_yaml_string(spec.values[0])}  # one of: {', '.join(spec.values)}"
            )
        elif spec.type == "number":
            lines.append(f"{spec.name}: 0")
        elif spec.type == "boolean":
            lines.append(f"{spec.name}: false")
        elif spec.type == "table":  # a list of records: one commented example row
            cells = ", ".join(f"{c.name}: ..." for c in spec.columns)
            lines.append(f"# {spec.name}:  # {spec.label}: a list of rows")
            lines.append(f"#   - {{{cells}}}")
        else:
            lines.append(f'{spec.name}: "TODO"')
    lines += [
        "---",
        "",
        "Write an introduction here. Cite every clinical claim with `[@key]` (a key from "
        "content/references.yaml) and link related articles with `[[slug]]`.",
        "",
        "## Overview",
        "",
    ]
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("x", encoding="utf-8") as handle:  # "x": never overwrite
            handle.write("\n".join(lines))
    except FileExistsError:
        print(f"error: {config.rel(target)} already exists; nothing was written", file=sys.stderr)
        return EXIT_CONTENT
    except OSError as exc:
        with contextlib.suppress(OSError):
            if target.is_file() and not target.read_text("utf-8"):
                target.unlink()  # "x" created it, then the write failed (a full disk)
        print(
            f"error: cannot create {config.rel(target)}: {exc.strerror}\n"
            "  hint: check that the folder is writable and the disk has room",
            file=sys.stderr,
        )
        return EXIT_CONTENT
    print(f"Created {config.rel(target)} (marked draft: true until you remove that line)")
    return EXIT_OK


def _yaml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
