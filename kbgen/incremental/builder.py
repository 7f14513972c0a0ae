"""The incremental builder: the same stages as `pipeline.build_site()`, redoing only what changed.

    config -> discover -> (what changed? the rebuild policy) -> load -> resolve -> plan
    -> render -> (stop if any error) -> write -> index (Pagefind, on the staged site)

`pipeline.build_site()` is the reference build; everything here must write exactly what it
writes (tests/test_incremental.py compares them). `Builder` builds one project repeatedly and
keeps what is expensive between builds: the Jinja2 environment, converted pages, and the
`BuildState` of the last successful build (state.py), also saved in the cache folder, so a
later `kbgen build` in a new process starts warm too.

What a build does is the rebuild policy's answer (policy.py) to the changes found
(plan.changes_since): none -> **unchanged** (the previous result, nothing loaded);
`Effect.FULL_REBUILD` (first build, config or kbgen changed, output folder replaced) ->
**cold** (every page parsed and every node rendered, in parallel, into a staging folder
swapped in atomically); otherwise **warm** (re-read changed files, update or redo the
resolve, render only the nodes whose recorded dependencies changed, write only changed
bytes; writing.py).

Input: the config path, `BuildOptions` and the factory of worker pools (workers.py).
Output: `BuildResult` with every diagnostic, the files written, the nodes rendered and
per-stage timings. Nothing is written when any error exists.
"""

from __future__ import annotations

import datetime as dt
import gc
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from kbgen.config import load_config
from kbgen.config_types import Config
from kbgen.diagnostics import Diagnostic, has_errors, promote_warnings, sorted_diagnostics
from kbgen.incremental.cache import CacheDir, SealedBytecodeStore
from kbgen.incremental.inputs import Inputs, Scanned, scan_inputs
from kbgen.incremental.markup_keys import engine_key, generator_id, glossary_digest
from kbgen.incremental.markup_store import MarkupStore
from kbgen.incremental.plan import (
    Changes,
    Plan,
    changes_since,
    closures_if_current,
    missing_files,
    page_tokens,
    plan_renders,
)
from kbgen.incremental.policy import Change, Effect
from kbgen.incremental.state import (
    STATE_FORMAT,
    BuildState,
    FileState,
    PageToken,
    StateBody,
    StateHead,
    cache_unusable,
    previous_state,
    save,
    variant,
)
from kbgen.incremental.workers import PoolFactory, process_pool
from kbgen.model import GlossaryTerm, Page, Reference
from kbgen.pipeline import (
    BuildOptions,
    BuildResult,
    Timer,
    available_cpus,
    load_data,
    load_timeline_file,
    write_failure_diagnostic,
)
from kbgen.write import WriteResult
from kbgen.write_manifest import marker_digest

# Rendering, resolving, writing and search are imported where used: a build that finds nothing
# changed never needs them (nor Jinja2, Markdown or Pygments), and it should be quick.
if TYPE_CHECKING:
    from kbgen.incremental.loading import LoadContext, LoadOutcome, ReadOnlyMarkups, SourceRecord
    from kbgen.incremental.rendering import RenderSession
    from kbgen.incremental.resolving import TrackedResolution
    from kbgen.incremental.writing import Writer, Written
    from kbgen.site_index import SiteIndex
    from kbgen.templates import Renderer
    from kbgen.timeline import Timeline


class _Run(NamedTuple):
    """One build's settings, found before any page is read."""

    config: Config
    cache: CacheDir | None
    generator: str
    inputs: Inputs
    previous: BuildState | None
    changes: Changes
    use_search: bool
    timer: Timer


class Builder:
    """Builds one project repeatedly, redoing only the work its changes require."""

    def __init__(
        self, config_path: Path, options: BuildOptions, pools: PoolFactory = process_pool
    ) -> None:
        self.config_path = config_path
        self.options = options
        self.pools = pools  #: makes the worker pools of the load and the render (workers.py)
        self.index: SiteIndex | None = None
        self._state: BuildState | None = None  #: the last successful build (this variant)
        self._records: tuple[str, int, dict[str, SourceRecord]] | None = None
        self._markups: MarkupStore | None = None
        self._renderer: tuple[tuple[str, frozenset[tuple[str, str]]], Renderer] | None = None
        self._generator: str | None = None
        self._wrote = False  #: a build of this Builder has written the output folder
        self._unsaved: tuple[CacheDir, str] | None = None  #: where a deferred state goes
        self._scanned: Scanned | None = None  #: the last walk of the source folders
        self._pages: dict[str, Page] = {}  #: the last load's pages, by content rel
        #: the output folder and its marker digest when the current build began
        self._output_before: tuple[Path, str | None] | None = None
        #: paths reported changed to builds that failed since the last successful one
        #: (None: a failed build was not told, so nothing is known of what it saw)
        self._unsettled: set[Path] | None = set()

    def build(
        self, changed: set[Path] | None = None, *, trust_changed: bool = False
    ) -> BuildResult:
        """One build. `changed`: paths a watcher saw change (they are re-read whatever
        their stamps say); None: find changes by stamp and digest alone.

        `trust_changed`: `changed` is *every* change since the last build (serve's watcher
        saw them all), so when they are all edits of files the last scan listed, the folders
        are not walked again, other files are not stat-ed and the output folder is not
        checked for deleted files: a save costs the same whatever the size of the site.
        A build without it (serve runs one after each pause) catches anything missed.
        """
        return self._settled_build(changed, trust_changed)

    def warm_up(self) -> BuildResult:
        """A build that does not stop at "nothing changed": it loads and resolves every page,
        so the next build can update that work instead of starting it (serve runs this
        right after a warm start, before the writer's first save). It trusts that nothing
        changed since this Builder's last build, so it renders and writes nothing then."""
        return self._settled_build(set(), True, may_skip=False)

    def _settled_build(
        self, changed: set[Path] | None, trust_changed: bool, may_skip: bool = True
    ) -> BuildResult:
        # A watcher reports the changes since the last build, but a build compares with
        # the last *successful* one: after a failed build, what it was told still counts,
        # and if it was not told, the next one has to look for itself.
        if changed is not None:
            if self._unsettled is None:
                trust_changed = False
            else:
                changed = changed | self._unsettled
        with _cyclic_gc_paused():
            result = self._build_once(changed, trust_changed, may_skip)
        if result.ok:
            self._unsettled = set()
        elif changed is None or self._unsettled is None:
            self._unsettled = None
        else:
            self._unsettled = changed
        return result

    def _build_once(
        self, changed: set[Path] | None, trust_changed: bool, may_skip: bool
    ) -> BuildResult:
        timer, options = Timer(), self.options
        with timer.stage("config"):
            config, config_diagnostics = load_config(self.config_path, options.output)
        if config is None:
            return BuildResult(config_diagnostics, config_failed=True, timings=timer.timings)
        output_marker = marker_digest(config.output_dir) if options.write else None
        if options.write:  # see replaced_output
            self._output_before = (config.output_dir, output_marker)
        cache = CacheDir(config.cache_dir) if options.cache else None
        unusable = cache_unusable(config, cache) if cache and options.write else None
        if unusable is not None:
            return BuildResult([unusable], timings=timer.timings)
        if self._markups is None or self._markups.cache != cache:
            self._markups = MarkupStore(cache) if options.write else _read_only(cache)
        self._generator = generator = self._generator or generator_id()
        with timer.stage("discover"):
            head = self._state.head if self._state is not None else None
            today = options.today or dt.date.today()
            inputs, self._scanned = scan_inputs(
                config, today, changed, trust_changed, self._scanned, head
            )
        with timer.stage("state"):
            previous, why_none = previous_state(
                self._state, config, cache, generator, options.drafts
            )
            self._state = previous
        use_search = config.search if options.search is None else options.search
        with timer.stage("check"):
            changes = changes_since(
                previous, why_none, inputs, use_search=use_search, write=options.write,
                output_marker=output_marker,
            )
        run = _Run(config, cache, generator, inputs, previous, changes, use_search, timer)
        if may_skip and previous is not None and not changes.kinds:
            return _unchanged_result(run, previous.head, options)
        return self._build(run)

    def _build(self, run: _Run) -> BuildResult:
        if run.previous is not None and run.previous.body is None:  # could not be read
            unread = Changes(frozenset({Change.NO_STATE}))
            run = run._replace(previous=None, changes=unread)
        config, inputs, previous, timer = run.config, run.inputs, run.previous, run.timer
        diagnostics: list[Diagnostic] = list(inputs.discovered)
        with timer.stage("data"):
            references, glossary, problems = load_data(inputs.tree, config)
            timeline, timeline_problems = load_timeline_file(inputs.tree, references)
            diagnostics += problems + timeline_problems
        with timer.stage("load"):
            loaded = self._load(run, glossary)
            diagnostics += loaded.diagnostics
        with timer.stage("resolve"):
            resolution = _resolve(run, loaded, references, glossary, timeline, self.options.drafts)
            diagnostics += resolution.diagnostics
            self.index = resolution.index
        with timer.stage("views"):
            session = self._session(resolution.index, run)
        diagnostics += session.diagnostics
        tokens = page_tokens(loaded.pages, loaded.records)
        effects = run.changes.effects
        plan: Plan | None = None
        if previous is not None and Effect.FULL_REBUILD not in effects:
            with timer.stage("plan"):
                missing = run.changes.missing
                plan = plan_renders(previous, session, tokens, missing, resolution.delta)
        writer = self._writer(run)
        if not self.options.write or has_errors(diagnostics):
            written = writer.check_only(session, plan)
        else:
            written = self._write(writer, session, plan, run, effects)
        diagnostics += written.diagnostics
        shown = promote_warnings(diagnostics) if self.options.strict else diagnostics
        result = BuildResult(
            sorted_diagnostics(shown),
            pages=_html_pages(session),
            written=written.written if written.graph is not None else None,
            timings=timer.timings,
            output_dir=config.output_dir,
            rendered=written.rendered,
            mode="warm" if plan is not None else "cold",
            converted=loaded.converted,
            resolved=resolution.resolved,
            workers=max(loaded.workers, written.workers),
            notes=session.view.missing_pages(),
        )
        if result.written is None:
            if loaded.converted and self._markups is not None:
                self._markups.flush()  # keep the conversions: the next build needs them
            return result
        with timer.stage("state"):
            state = _state_of(
                run, self.options, loaded, tokens, session, resolution, written, diagnostics
            )
            self._remember(run, state, loaded)
        return result

    def _write(
        self,
        writer: Writer,
        session: RenderSession,
        plan: Plan | None,
        run: _Run,
        effects: Effect,
    ) -> Written:
        """Render and write; a failed write (a full disk, a read-only folder) is a
        diagnostic: staging was removed and the old site kept."""
        failures: tuple[type[OSError | SearchIndexError], ...] = (OSError,)
        if writer.use_search:  # here: a build without search never loads the indexer
            from kbgen.search import SearchIndexError

            failures = (OSError, SearchIndexError)
        try:
            if plan is None or run.previous is None:
                return writer.cold(session)
            return writer.warm(plan, session, run.previous, effects)
        except failures as exc:
            from kbgen.incremental.writing import Written

            return Written(frozenset(), 1, [write_failure_diagnostic(run.config, exc)])

    def _writer(self, run: _Run) -> Writer:
        from kbgen.incremental.writing import Writer

        return Writer(
            run.config,
            run.inputs,
            run.timer,
            run.use_search,
            self.options.jobs or available_cpus(),
            self.pools,
            self._progress,
            first_write=not self._wrote,
            cache=run.cache,
        )

    def _session(self, index: SiteIndex, run: _Run) -> RenderSession:
        from kbgen.incremental.rendering import RenderSession, assets_job

        templates = run.inputs.templates
        return RenderSession(
            index,
            run.config,
            self._renderer_for(run.config, templates),
            [assets_job()],
            template_digests={name: digest for name, (_, digest) in templates.items()},
            closures=closures_if_current(run.previous, templates),
        )

    def _load(self, run: _Run, glossary: list[GlossaryTerm]) -> LoadOutcome:
        from kbgen.incremental.loading import PageLoader, load_pages

        assert self._markups is not None
        config, inputs = run.config, run.inputs
        previous: Mapping[str, SourceRecord] = {}
        scanned_ns = 0
        known_pages: Mapping[str, Page] | None = None
        reload_all = Effect.RELOAD_ALL in run.changes.effects
        if reload_all:
            pass  # the policy says no record of the last build holds (another glossary, day)
        elif self._records is not None and self._records[0] == config.digest:
            _, scanned_ns, previous = self._records
            known_pages = self._pages
        elif self._state is not None and self._state.body is not None:
            previous = self._state.body.records
            scanned_ns = self._state.head.scanned_ns
        outcome = load_pages(
            inputs.tree.pages,
            PageLoader(_load_context(run, glossary), self._markups),
            previous,
            scanned_ns,
            force=inputs.force_pages,
            trusted=inputs.trusted and not reload_all,
            jobs=self.options.jobs or available_cpus(),
            progress=self._progress("load"),
            known_pages=known_pages,
            pools=self.pools,
        )
        # Records depend only on the files, so they help the next build even if this fails.
        self._records = (config.digest, inputs.scanned_ns, outcome.records)
        self._pages = {page.rel: page for page in outcome.pages}
        self._markups.release()
        return outcome

    def _renderer_for(self, config: Config, templates: Mapping[str, FileState]) -> Renderer:
        """The Jinja2 environment, rebuilt only when the config or a template changed."""
        from kbgen.templates import Renderer

        key = (config.digest, frozenset((k, v[1]) for k, v in templates.items()))
        if self._renderer is None or self._renderer[0] != key:
            cache = CacheDir(config.cache_dir) if self.options.cache else None
            # `check` writes nothing, Jinja2's bytecode cache included
            store = SealedBytecodeStore(cache) if cache and self.options.write else None
            self._renderer = (key, Renderer(config, store))
        return self._renderer[1]

    def _remember(self, run: _Run, state: BuildState, loaded: LoadOutcome) -> None:
        """Keep this successful build's state (and save it, unless deferred)."""
        assert self._markups is not None
        self._wrote = True
        self._state = state
        live = [r.markup_key for r in loaded.records.values() if r.markup_key]
        self._markups.retain(live)
        if run.cache is not None:
            self._unsaved = (run.cache, variant(run.config, self.options.drafts))
            if not self.options.defer_state:
                self.save_state()
            if loaded.converted:
                self._markups.flush(live)  # also forgets conversions no page uses any more

    def replaced_output(self) -> Path | None:
        """The output folder, if the latest build has swapped a new site into it (for an
        interrupt: the build can be stopped after the swap, while it tidies up or the
        warnings print, and then the new site is what is there)."""
        if self._output_before is None:
            return None
        output_dir, before = self._output_before
        now = marker_digest(output_dir)
        return output_dir if now is not None and now != before else None

    def output_damaged(self, output_dir: Path) -> bool:
        """Whether files the last successful build wrote are gone from the output folder
        (someone deleted the folder or a page): one `stat` per file, no watcher needed."""
        state = self._state
        if state is None or not self.options.write:
            return False
        head = state.head
        return marker_digest(output_dir) != head.marker or bool(
            missing_files(output_dir, head.manifest)
        )

    @property
    def state_unsaved(self) -> bool:
        """The last successful build's state is not in the cache folder yet (`defer_state`)."""
        return self._unsaved is not None

    def save_state(self) -> None:
        """Write the last successful build's state to the cache folder, if not done yet,
        so that the next process (a `kbgen build`, a new `serve`) starts warm."""
        if self._unsaved is None or self._state is None:
            return
        save(self._state, *self._unsaved)
        # Only now: a save cut short (Ctrl-C or SIGTERM right after `serve` started) is
        # still owed, and the shutdown path writes it.
        self._unsaved = None

    def _progress(self, stage: str) -> Callable[[int, int], None] | None:
        report = self.options.progress
        if report is None:
            return None
        return lambda done, total: report(stage, done, total)


def _resolve(
    run: _Run,
    loaded: LoadOutcome,
    references: dict[str, Reference],
    glossary: list[GlossaryTerm],
    timeline: Timeline | None,
    drafts: bool,
) -> TrackedResolution:
    """The resolve stage, updating the resolution saved with the previous state when the
    policy allows (the planner compares against the fingerprints that same build recorded)."""
    from kbgen.incremental.resolving import resolve_tracked

    body = run.previous.body if run.previous is not None else None
    return resolve_tracked(
        loaded.pages,
        references,
        glossary,
        run.config,
        drafts,
        previous=body.resolution if body is not None else None,
        unloadable=loaded.records.keys() - {page.rel for page in loaded.pages},
        timeline=timeline,
    )


def _read_only(cache: CacheDir | None) -> ReadOnlyMarkups:
    from kbgen.incremental.loading import ReadOnlyMarkups

    return ReadOnlyMarkups(cache)


def _load_context(run: _Run, glossary: list[GlossaryTerm]) -> LoadContext:
    from kbgen.incremental.loading import LoadContext

    markdown = run.config.markdown.key()
    key = engine_key(run.generator, markdown, glossary_digest(glossary))
    cache_root = run.cache.root if run.cache is not None else None
    return LoadContext(run.config, tuple(glossary), key, run.inputs.today, cache_root)


def _unchanged_result(run: _Run, head: StateHead, options: BuildOptions) -> BuildResult:
    """The previous build's result, for a build that found nothing changed."""
    diagnostics = list(run.inputs.discovered) + list(head.diagnostics)
    if options.strict:
        diagnostics = promote_warnings(diagnostics)
    wrote = options.write and not has_errors(diagnostics)
    return BuildResult(
        sorted_diagnostics(diagnostics),
        pages=head.html_pages,
        written=WriteResult((), (), head.marker) if wrote else None,
        timings=run.timer.timings,
        output_dir=run.config.output_dir,
        mode="unchanged",
    )


def _state_of(
    run: _Run,
    options: BuildOptions,
    loaded: LoadOutcome,
    tokens: dict[str, PageToken],
    session: RenderSession,
    resolution: TrackedResolution,
    written: Written,
    diagnostics: list[Diagnostic],
) -> BuildState:
    """What the next build starts from, after this one wrote `written` (`diagnostics`:
    all of this build's, kept to be shown again by a build that finds nothing changed)."""
    assert written.graph is not None and written.manifest is not None
    assert written.written is not None
    discovered = set(run.inputs.discovered)
    head = StateHead(
        format=STATE_FORMAT,
        generator=run.generator,
        config_digest=run.config.digest,
        drafts=options.drafts,
        today=run.inputs.today,
        scanned_ns=run.inputs.scanned_ns,
        pages={rel: (r.stamp, r.digest) for rel, r in loaded.records.items()},
        data=run.inputs.data,
        templates=run.inputs.templates,
        statics=run.inputs.statics,
        manifest=written.manifest,
        marker=written.written.marker,
        searched=run.use_search,
        diagnostics=tuple(d for d in diagnostics if d not in discovered),
        html_pages=_html_pages(session),
    )
    body = StateBody(loaded.records, tokens, written.graph, session.closures, resolution)
    return BuildState(head, body)


def _html_pages(session: RenderSession) -> int:
    return sum(1 for job in session.jobs if (job.file or "").endswith(".html"))


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Run a build without the cyclic garbage collector.

    A build allocates millions of small objects that form no cycles (pages, links, index
    entries); the collector's full passes over all of them made resolving 10,000 pages take
    40% longer. Reference counting still frees everything as usual; whatever cycles a build
    leaves are collected once the collector is back on. Worker processes forked meanwhile
    inherit the setting for their short lives.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


__all__ = ["Builder"]
