"""The build, top to bottom: the one place that knows the order of the stages.

    config -> discover -> load -> resolve -> render -> (stop if any error) -> write -> index

`build_site()` is the reference build: each stage once, from scratch, with no cache, build
state or recorded dependencies. Everything faster (the warm and `serve` builds of
`kbgen.incremental.Builder`) calls the same stage functions and must write exactly what it
writes; tests/test_incremental.py compares them. This module imports nothing of
`kbgen.incremental` (tests/test_architecture.py checks).

Input: the config path and `BuildOptions`. Output: `BuildResult` with every diagnostic, the
files written and per-stage timings. Nothing is written when any error exists.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from kbgen.config import load_config
from kbgen.config_types import Config
from kbgen.diagnostics import (
    Diagnostic,
    has_errors,
    no_file_error,
    promote_warnings,
    sorted_diagnostics,
)
from kbgen.discover import SourceFile, SourceTree, scan
from kbgen.model import GlossaryTerm, OutputFile, Page, Reference
from kbgen.write import (
    StaticFile,
    WriteResult,
    write_failure,
)

# Rendering, resolving and search are imported where used: a build that finds nothing
# changed never needs them (nor Jinja2, Markdown or Pygments), and it should be quick.
if TYPE_CHECKING:
    from kbgen.markup import MarkupEngine
    from kbgen.search import SearchIndexError
    from kbgen.timeline import Timeline


Progress = Callable[[str, int, int], None]  #: (stage, done, total)


@dataclass(frozen=True, slots=True)
class BuildOptions:
    drafts: bool = False  #: include pages with `draft: true`
    strict: bool = False  #: warnings count as errors
    write: bool = True  #: False for `check`
    output: Path | None = None  #: overrides config output_dir
    today: dt.date | None = None  #: for review-date checks; None = the real date
    search: bool | None = None  #: None = as config says
    jobs: int | None = None  #: worker processes for cold work; None = the CPUs available
    cache: bool = True  #: keep converted pages and the build state in config.cache_dir
    progress: Progress | None = None  #: called as work advances (the CLI's progress bar)
    #: keep the build state in memory until `Builder.save_state()` (serve: saving 10,000
    #: pages' state after every save would cost more than the rebuild)
    defer_state: bool = False


@dataclass
class BuildResult:
    diagnostics: list[Diagnostic]
    config_failed: bool = False  #: the config itself is invalid (exit code 2)
    pages: int = 0  #: HTML pages in the site
    written: WriteResult | None = None
    timings: dict[str, float] = field(default_factory=dict)
    output_dir: Path | None = None
    rendered: frozenset[str] = frozenset()  #: dependency nodes rendered by this build
    mode: str = "cold"  #: "cold", "warm" or "unchanged"
    converted: int = 0  #: Markdown conversions run (cache misses)
    resolved: int = 0  #: pages whose links were resolved (the rest kept the last build's)
    workers: int = 1  #: processes used for the heaviest stage
    notes: tuple[str, ...] = ()  #: said under --verbose (a generated page left out, ...)

    @property
    def ok(self) -> bool:
        return not self.config_failed and not has_errors(self.diagnostics)

    @property
    def warnings(self) -> int:
        return sum(1 for d in self.diagnostics if not d.is_error)

    @property
    def errors(self) -> int:
        return sum(1 for d in self.diagnostics if d.is_error)


class Timer:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start


def _read_text(file: SourceFile | None) -> tuple[str | None, list[Diagnostic]]:
    from kbgen.load import decode_text, read_source

    if file is None:
        return None, []
    data, diagnostics = read_source(file)
    if data is None:
        return None, diagnostics
    return decode_text(data, file.shown)


def static_files(tree: SourceTree, config: Config) -> list[StaticFile]:
    return [StaticFile(f"static/{f.rel}", f.path) for f in tree.static]


def available_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def write_failure_diagnostic(config: Config, exc: OSError | SearchIndexError) -> Diagnostic:
    if not isinstance(exc, OSError):  # then a SearchIndexError
        return no_file_error(
            config.rel(config.path),
            str(exc),
            "fix that and build again, or build without search (--no-search, or "
            "'search: false' in config.yaml); the previous site is unchanged",
        )
    message, hint = write_failure(exc, config.output_dir)
    setting = config.output_setting
    if setting is None:
        return no_file_error(config.rel(config.path), message, hint)
    return setting.diagnostic(message, hint)


LoadedPage = tuple[Page | None, list[Diagnostic]]


#: runs one function over many items, like the builtin `map` or `Executor.map`
Mapper = Callable[[Callable[[SourceFile], LoadedPage], Iterable[SourceFile]], Iterable[LoadedPage]]


def build_site(
    config_path: Path, options: BuildOptions, mapper: Mapper = map
) -> BuildResult:
    """The reference build: every stage once, from scratch, top to bottom.

    No cache, no build state, no recorded dependencies: this is what every faster build
    (`Builder`: warm, `serve`) must reproduce byte for byte, and the incremental tests compare
    them with it. `mapper` runs the per-page load (the builtin `map`, or an executor's `map`
    for parallel loading; the output does not depend on it).
    """
    from kbgen.markup import pygments_css
    from kbgen.render import render_all
    from kbgen.resolve import resolve_site
    from kbgen.routes import missing_pages
    from kbgen.search import SearchIndexError
    from kbgen.templates import Renderer
    from kbgen.write import commit_full

    timer = Timer()
    with timer.stage("config"):
        config, diagnostics = load_config(config_path, options.output)
    if config is None:
        return BuildResult(diagnostics, config_failed=True, timings=timer.timings)
    today = options.today or dt.date.today()
    with timer.stage("discover"):
        tree, found = scan(config)
        diagnostics = [*diagnostics, *found]
    with timer.stage("data"):
        references, glossary, problems = load_data(tree, config)
        timeline, found = load_timeline_file(tree, references)
        diagnostics += problems + found
    with timer.stage("load"):
        loaded = list(mapper(PageLoad(config, tuple(glossary), today), tree.pages))
        pages = [page for page, _ in loaded if page is not None]
        diagnostics += [d for _, problems in loaded for d in problems]
    with timer.stage("resolve"):
        resolution = resolve_site(
            pages,
            references,
            glossary,
            config,
            options.drafts,
            unloadable={f.rel for f in tree.pages} - {page.rel for page in pages},
            timeline=timeline,
        )
        diagnostics += resolution.diagnostics
    with timer.stage("render"):
        outputs, problems = render_all(resolution.index, config, Renderer(config))
        outputs.append(OutputFile("assets/pygments.css", pygments_css().encode(), "assets"))
        diagnostics += problems
    if options.strict:
        diagnostics = promote_warnings(diagnostics)
    result = BuildResult(
        sorted_diagnostics(diagnostics),
        pages=sum(1 for output in outputs if output.rel.endswith(".html")),
        timings=timer.timings,
        output_dir=config.output_dir,
        rendered=frozenset(output.node for output in outputs),
        converted=len(pages),
        resolved=len(pages),
        notes=missing_pages(config),
    )
    if not options.write or has_errors(result.diagnostics):
        return result
    use_search = config.search if options.search is None else options.search
    with timer.stage("write"):
        try:
            result.written = commit_full(
                outputs, static_files(tree, config), config.output_dir,
                before_swap=_index_search if use_search else None,
            )
        except (OSError, SearchIndexError) as exc:  # a full disk, a read-only folder:
            result.diagnostics = [write_failure_diagnostic(config, exc)]  # the site is kept
    return result


class PageLoad:
    """Loads one page file from scratch: `build_site`'s per-page work.

    Picklable, so an executor's `map` can run it in other processes; each process builds its
    own Markdown engine on first use (engines hold compiled extensions that cannot be pickled).
    """

    def __init__(self, config: Config, glossary: tuple[GlossaryTerm, ...], today: dt.date) -> None:
        self.config, self.glossary, self.today = config, glossary, today
        self._engine: MarkupEngine | None = None

    def __call__(self, file: SourceFile) -> LoadedPage:
        from kbgen.load import load_page
        from kbgen.markup import MarkupEngine

        if self._engine is None:
            self._engine = MarkupEngine(self.config.markdown, self.glossary)
        return load_page(file, self.config, self._engine, self.today)

    def __getstate__(self) -> tuple[Config, tuple[GlossaryTerm, ...], dt.date]:
        return self.config, self.glossary, self.today

    def __setstate__(self, state: tuple[Config, tuple[GlossaryTerm, ...], dt.date]) -> None:
        self.config, self.glossary, self.today = state
        self._engine = None


def _index_search(staging: Path) -> None:
    from kbgen import search

    search.index_site(staging)


def load_data(
    tree: SourceTree, config: Config
) -> tuple[dict[str, Reference], list[GlossaryTerm], list[Diagnostic]]:
    """`references.yaml` and `glossary.yaml` -> references by key and glossary terms."""
    from kbgen.citations import load_references
    from kbgen.glossary import load_glossary

    diagnostics: list[Diagnostic] = []
    references_file = tree.data.get("references.yaml")
    text, problems = _read_text(references_file)
    diagnostics += problems
    references, problems = load_references(
        text, references_file.shown if references_file else "content/references.yaml"
    )
    diagnostics += problems
    glossary_file = tree.data.get("glossary.yaml")
    text, problems = _read_text(glossary_file)
    diagnostics += problems
    glossary, problems = load_glossary(
        text, glossary_file.shown if glossary_file else "content/glossary.yaml"
    )
    diagnostics += problems
    return references, glossary, diagnostics


def load_timeline_file(
    tree: SourceTree, references: Mapping[str, Reference]
) -> tuple[Timeline | None, list[Diagnostic]]:
    """`timeline.yaml` (optional) -> the timeline its page shows; its citations are checked
    against `references`."""
    timeline_file = tree.data.get("timeline.yaml")
    text, diagnostics = _read_text(timeline_file)
    if timeline_file is None:
        return None, diagnostics
    from kbgen.timeline import load_timeline  # here: most sites have no timeline

    timeline, problems = load_timeline(text, timeline_file.shown, frozenset(references))
    return timeline, diagnostics + problems


__all__ = ["BuildOptions", "BuildResult", "build_site"]
