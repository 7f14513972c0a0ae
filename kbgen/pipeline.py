"""The build: the one place that knows the order of the stages.

    config -> discover -> load -> resolve -> render -> (stop if any error) -> write -> index

`build_site` runs one build. `Builder` keeps what is expensive between builds of the same
project (the Jinja2 environment, the Markdown engine, converted pages by content digest) so
that `serve` and warm builds redo only what changed; a build through `Builder` always produces
exactly what a fresh full build would.

Input: the config path and `BuildOptions`. Output: `BuildResult` with every diagnostic, the
output files changed, and per-stage timings. Nothing is written when any error exists.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from kbgen import search
from kbgen.citations import load_references
from kbgen.config import Config, load_config
from kbgen.diagnostics import Diagnostic, has_errors, promote_warnings, sorted_diagnostics
from kbgen.discover import SourceFile, SourceTree, scan
from kbgen.glossary import load_glossary
from kbgen.load import load_page
from kbgen.markup import MarkupEngine, pygments_css
from kbgen.model import GlossaryTerm, OutputFile, Page, Reference
from kbgen.render import Renderer, render_all
from kbgen.resolve import SiteIndex, build_index
from kbgen.write import StaticFile, WriteResult, commit_full


@dataclass(frozen=True, slots=True)
class BuildOptions:
    drafts: bool = False  #: include pages with `draft: true`
    strict: bool = False  #: warnings count as errors
    write: bool = True  #: False for `check`
    output: Path | None = None  #: overrides config output_dir
    today: dt.date | None = None  #: for review-date checks; None = the real date
    search: bool | None = None  #: None = as config says


@dataclass
class BuildResult:
    diagnostics: list[Diagnostic]
    config_failed: bool = False  #: the config itself is invalid (exit code 2)
    pages: int = 0  #: HTML pages rendered
    written: WriteResult | None = None
    timings: dict[str, float] = field(default_factory=dict)
    output_dir: Path | None = None

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


class Builder:
    """Builds one project repeatedly, reusing parsed pages whose bytes did not change."""

    def __init__(self, config_path: Path, options: BuildOptions) -> None:
        self.config_path = config_path
        self.options = options
        self._config: Config | None = None
        self._renderer: Renderer | None = None
        self._engine: MarkupEngine | None = None
        self._engine_key: tuple[str, tuple[GlossaryTerm, ...]] | None = None
        self._pages: dict[str, tuple[str, Page | None, list[Diagnostic]]] = {}
        self.index: SiteIndex | None = None

    def build(self) -> BuildResult:
        timer = Timer()
        options = self.options
        with timer.stage("config"):
            config, config_diagnostics = load_config(self.config_path, options.output)
        if config is None:
            return BuildResult(config_diagnostics, config_failed=True, timings=timer.timings)
        if self._config is None or self._config.digest != config.digest:
            self._renderer = Renderer(config)
            self._pages.clear()
            self._engine = None
        self._config = config
        today = options.today or dt.date.today()
        diagnostics: list[Diagnostic] = []
        with timer.stage("discover"):
            tree, found = scan(config)
            diagnostics += found
        with timer.stage("data"):
            references, glossary, data_diagnostics = self._load_data(tree, config)
            diagnostics += data_diagnostics
        with timer.stage("load"):
            pages = self._load_pages(tree, config, glossary, today, diagnostics)
        with timer.stage("resolve"):
            index, resolve_diagnostics = build_index(
                pages,
                references,
                glossary,
                config,
                options.drafts,
                references_path=config.rel(config.content_dir / "references.yaml"),
                glossary_path=config.rel(config.content_dir / "glossary.yaml"),
            )
            diagnostics += resolve_diagnostics
            self.index = index
        assert self._renderer is not None
        with timer.stage("render"):
            outputs, render_diagnostics = render_all(index, config, self._renderer)
            diagnostics += render_diagnostics
            outputs.append(OutputFile("assets/pygments.css", pygments_css().encode(), "assets"))
        if options.strict:
            diagnostics = promote_warnings(diagnostics)
        diagnostics = sorted_diagnostics(diagnostics)
        result = BuildResult(
            diagnostics,
            pages=sum(1 for o in outputs if o.rel.endswith(".html")),
            timings=timer.timings,
            output_dir=config.output_dir,
        )
        if has_errors(diagnostics) or not options.write:
            return result
        use_search = config.search if options.search is None else options.search
        with timer.stage("write"):
            result.written = commit_full(
                outputs,
                static_files(tree, config),
                config.output_dir,
                before_swap=(lambda staging: self._index_search(staging, timer))
                if use_search
                else None,
            )
        return result

    def _index_search(self, staging: Path, timer: Timer) -> None:
        with timer.stage("search"):
            search.index_site(staging)

    def _load_data(
        self, tree: SourceTree, config: Config
    ) -> tuple[dict[str, Reference], list[GlossaryTerm], list[Diagnostic]]:
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

    def _load_pages(
        self,
        tree: SourceTree,
        config: Config,
        glossary: list[GlossaryTerm],
        today: dt.date,
        diagnostics: list[Diagnostic],
    ) -> list[Page]:
        engine_key = (config.markdown.key(), tuple(glossary))
        if self._engine is None or self._engine_key != engine_key:
            self._engine = MarkupEngine(config.markdown, glossary)
            self._engine_key = engine_key
            self._pages.clear()
        pages: list[Page] = []
        fresh: dict[str, tuple[str, Page | None, list[Diagnostic]]] = {}
        for file in tree.pages:
            stamp = _stamp(file)
            cached = self._pages.get(file.rel)
            if cached is not None and cached[0] == stamp and stamp:
                entry = cached
            else:
                page, problems = load_page(file, config, self._engine, today)
                entry = (stamp, page, problems)
            fresh[file.rel] = entry
            diagnostics += entry[2]
            if entry[1] is not None:
                pages.append(entry[1])
        self._pages = fresh
        return pages


def _stamp(file: SourceFile) -> str:
    """Size + mtime_ns: a cheap "unchanged" test for the in-memory cache of one session."""
    try:
        stat = file.path.stat()
    except OSError:
        return ""
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def build_site(config_path: Path, options: BuildOptions) -> BuildResult:
    return Builder(config_path, options).build()
