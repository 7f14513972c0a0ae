"""The incremental builder: the same stages as `pipeline.build_site()`, redoing only what changed.

    config -> discover -> load -> resolve -> plan -> render -> (stop if any error) -> write
    -> index (Pagefind, on the staged site before it is swapped in)

`build_site()` (at the end of this module) is the reference build: each stage once, from
scratch, top to bottom, with no cache, state or recorded dependencies. Everything faster
must write exactly what it writes; tests/test_incremental.py compares them.

`Builder` builds one project repeatedly and keeps what is expensive between builds: the
Jinja2 environment, converted pages, and a `BuildState` (file stamps, front matter, the
dependency graph of the outputs, the output manifest) that is also saved in the cache folder,
so a later `kbgen build` in a new process starts warm too. Every build through `Builder`
produces exactly the files a clean full build would; the incremental tests check that.

Three kinds of build:

* **cold** (no usable state: first build, config or generator changed, output folder not the
  one we wrote): parse every page (in parallel, reusing cached conversions), render every
  node (in parallel, streamed into a staging folder), swap the folder in atomically;
* **warm**: re-read only files whose stamp changed, re-resolve the site (cheap), render only
  the nodes whose recorded dependencies changed (deps.py), then write only outputs whose
  bytes changed, file by file (`commit_incremental`), or through staging when the search
  index has to be rebuilt;
* **unchanged**: no source, template, static file or date changed and the output is intact:
  the previous result is returned without loading anything.

Input: the config path and `BuildOptions`. Output: `BuildResult` with every diagnostic, the
files written, the nodes rendered and per-stage timings. Nothing is written when any error
exists.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gc
import hashlib
import os
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kbgen.config import Config, load_config
from kbgen.diagnostics import (
    Diagnostic,
    error,
    has_errors,
    no_file_error,
    promote_warnings,
    sorted_diagnostics,
)
from kbgen.discover import SourceFile, SourceTree, scan
from kbgen.incremental.cache import (
    CacheDir,
    MarkupStore,
    SealedBytecodeStore,
    Stamp,
    engine_key,
    file_digest,
    generator_id,
    glossary_digest,
    load_state,
    save_state,
    stamp_of,
    stamp_trusted,
)
from kbgen.incremental.deps import DepGraph, Fingerprinter, GraphUpdate
from kbgen.incremental.loading import LoadContext, PageLoader, SourceRecord, load_pages
from kbgen.model import GlossaryTerm, Markup, OutputFile, Page
from kbgen.pipeline import (
    BuildOptions,
    BuildResult,
    Timer,
    available_cpus,
    load_data,
    load_timeline_file,
    static_files,
    write_failure_diagnostic,
)
from kbgen.search import SearchIndexError
from kbgen.write import (
    Staging,
    WriteResult,
    commit_incremental,
    marker_digest,
)

# Rendering, resolving and search are imported where used: a build that finds nothing
# changed never needs them (nor Jinja2, Markdown or Pygments), and it should be quick.
if TYPE_CHECKING:
    from kbgen.incremental.rendering import RenderSession
    from kbgen.render import RenderJob
    from kbgen.resolve import Resolution, SiteIndex
    from kbgen.templates import Renderer


STATE_FORMAT = 2


FileState = tuple[Stamp | None, str]  #: (stamp, sha256) of a template, static or data file


@dataclass
class StateHead:
    """The part of the last build's state that the "nothing changed" check needs: small."""

    format: int
    generator: str
    config_digest: str
    drafts: bool
    today: dt.date
    scanned_ns: int  #: when that build started stat-ing files (see cache.stamp_trusted)
    pages: dict[str, FileState]  #: content rel -> (stamp, digest) of each page file
    data: dict[str, FileState]  #: references.yaml / glossary.yaml
    templates: dict[str, FileState]
    statics: dict[str, FileState]  #: rel under static/
    manifest: dict[str, str]  #: every output file -> digest (what the output folder holds)
    marker: str  #: digest of the marker file written
    searched: bool  #: the output holds a Pagefind index of exactly these pages
    diagnostics: tuple[Diagnostic, ...]  #: everything except discovery's (recomputed)
    html_pages: int


@dataclass
class StateBody:
    """The rest: loaded only when something changed."""

    records: dict[str, SourceRecord]  #: content rel -> what loading the page found
    page_tokens: dict[str, tuple[str, str, str | None]]  #: page key -> (rel, digest, markup)
    graph: DepGraph
    closures: dict[str, frozenset[str] | None]  #: template -> templates it includes
    #: the knowledge graph of that build (in memory with its pages, saved without them),
    #: for an incremental resolve
    resolution: Resolution | None = None


class BuildState:
    """What the last successful build of one variant knew; the next build starts from it."""

    def __init__(self, head: StateHead, body: StateBody | Callable[[], StateBody | None]) -> None:
        self.head = head
        self._body = body

    @property
    def body(self) -> StateBody | None:
        """The body, unpickled on first use; None if it turns out to be unusable."""
        if callable(self._body):
            self._body = self._body()  # type: ignore[assignment]
        return self._body  # type: ignore[return-value]


class _Scanned:
    """One walk of the source folders, and where each file it found sits."""

    def __init__(
        self, config_digest: str, tree: SourceTree, found: list[Diagnostic], scanned_ns: int
    ) -> None:
        self.config_digest = config_digest
        self.tree = tree
        self.found = found
        self.scanned_ns = scanned_ns
        self.rels = {file.path: file.rel for file in tree.pages}
        for file in (*tree.data.values(), *tree.static, *tree.templates):
            self.rels.setdefault(file.path, "")  # known, but not a page


@dataclass
class _Inputs:
    """The files of this build and their digests, before anything is parsed."""

    config: Config
    today: dt.date
    tree: SourceTree
    discovered: list[Diagnostic]
    scanned_ns: int
    templates: dict[str, FileState]
    statics: dict[str, FileState]
    data: dict[str, FileState]
    force_pages: frozenset[str]
    #: the caller's `changed` lists every change (a watcher saw them): files outside it are
    #: not listed or stat-ed again, and output files are not checked for deletion
    trusted: bool = False


class Builder:
    """Builds one project repeatedly, redoing only the work its changes require."""

    def __init__(self, config_path: Path, options: BuildOptions) -> None:
        self.config_path = config_path
        self.options = options
        self.index: SiteIndex | None = None
        self._state: BuildState | None = None  #: the last successful build (this variant)
        self._records: tuple[str, int, dict[str, SourceRecord]] | None = None
        self._markups: MarkupStore | None = None
        self._renderer: Renderer | None = None
        self._renderer_key: tuple[str, frozenset[tuple[str, str]]] | None = None
        self._generator: str | None = None
        self._wrote = False  #: a build of this Builder has written the output folder
        self._unsaved: tuple[CacheDir, str] | None = None  #: where a deferred state goes
        self._scanned: _Scanned | None = None  #: the last walk of the source folders
        self._pages: dict[str, Page] = {}  #: the last load's pages, by content rel
        #: the output folder and its marker digest when the current build began
        self._output_before: tuple[Path, str | None] | None = None
        #: paths reported changed to builds that failed since the last successful one
        #: (None: a failed build was not told, so nothing is known of what it saw)
        self._unsettled: set[Path] | None = set()

    # -- the build --------------------------------------------------------------------

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
        self, changed: set[Path] | None, trust_changed: bool, may_skip: bool = True
    ) -> BuildResult:
        timer = Timer()
        options = self.options
        with timer.stage("config"):
            config, config_diagnostics = load_config(self.config_path, options.output)
        if config is None:
            return BuildResult(config_diagnostics, config_failed=True, timings=timer.timings)
        if options.write:
            self._output_before = (config.output_dir, marker_digest(config.output_dir))
        cache = CacheDir(config.cache_dir) if options.cache else None
        if cache is not None and options.write:
            unusable = _cache_unusable(config, cache)
            if unusable is not None:
                return BuildResult([unusable], timings=timer.timings)
        if self._markups is None or self._markups.cache != cache:
            self._markups = MarkupStore(cache) if options.write else _ReadOnlyMarkups(cache)
        generator = self._generator or generator_id()
        self._generator = generator
        with timer.stage("discover"):
            inputs = self._scan(config, changed, trust_changed)
        with timer.stage("state"):
            previous = self._previous_state(config, cache, generator)
        use_search = config.search if options.search is None else options.search
        with timer.stage("check"):
            unchanged = (
                may_skip
                and previous is not None
                and self._unchanged(previous, inputs, use_search, timer)
            )
        if unchanged and previous is not None:
            return self._unchanged_result(previous, inputs, timer)
        return self._build(config, cache, generator, inputs, previous, use_search, timer)

    def _build(
        self,
        config: Config,
        cache: CacheDir | None,
        generator: str,
        inputs: _Inputs,
        previous: BuildState | None,
        use_search: bool,
        timer: Timer,
    ) -> BuildResult:
        options = self.options
        jobs = options.jobs or available_cpus()
        diagnostics: list[Diagnostic] = list(inputs.discovered)
        with timer.stage("data"):
            references, glossary, data_diagnostics = load_data(inputs.tree, config)
            timeline, timeline_diagnostics = load_timeline_file(inputs.tree, references)
            diagnostics += data_diagnostics + timeline_diagnostics
        with timer.stage("load"):
            loaded = self._load(config, cache, generator, inputs, glossary, jobs)
            diagnostics += loaded.diagnostics
        from kbgen.resolve import resolve_site

        with timer.stage("resolve"):
            # The resolution saved with `previous` is the one to update: the planner
            # compares against the fingerprints that same build recorded.
            base = previous.body.resolution if previous and previous.body else None
            resolution = resolve_site(
                loaded.pages,
                references,
                glossary,
                config,
                options.drafts,
                previous=base,
                unloadable=loaded.records.keys() - {page.rel for page in loaded.pages},
                timeline=timeline,
            )
            diagnostics += resolution.diagnostics
            index = resolution.index
            self.index = index
        with timer.stage("views"):
            renderer = self._renderer_for(config, inputs.templates)
            template_digests = {name: digest for name, (_, digest) in inputs.templates.items()}
            from kbgen.incremental.rendering import RenderSession

            session = RenderSession(
                index,
                config,
                renderer,
                [_assets_job()],
                template_digests=template_digests,
                closures=_closures_if_current(previous, inputs.templates),
            )
        diagnostics += session.diagnostics
        tokens = _page_tokens(loaded.pages, loaded.records)
        output_intact = (
            previous is not None and marker_digest(config.output_dir) == previous.head.marker
        )
        plan: _Plan | None = None
        if (
            previous is not None
            and previous.body is not None
            and (output_intact or not options.write)
        ):
            with timer.stage("plan"):
                plan = _plan(
                    previous,
                    session,
                    tokens,
                    config.output_dir,
                    options.write and not inputs.trusted,
                    resolution.delta,
                )
        result = BuildResult(
            [],
            pages=sum(1 for job in session.jobs if (job.file or "").endswith(".html")),
            timings=timer.timings,
            output_dir=config.output_dir,
            mode="warm" if plan is not None else "cold",
            converted=loaded.converted,
            resolved=resolution.resolved,
            workers=loaded.workers,
        )
        written: tuple[DepGraph, dict[str, str]] | None = None
        if not options.write or has_errors(diagnostics):
            self._check_only(session, plan, timer, result)
        else:
            try:
                if plan is None:
                    written = self._cold_write(session, inputs, config, use_search, timer, result)
                else:
                    assert previous is not None
                    written = self._warm_write(
                        plan, session, inputs, config, previous, use_search, timer, result
                    )
            except (OSError, SearchIndexError) as exc:  # a full disk, a read-only folder:
                written, result.written = None, None  # staging was removed, the site kept
                result.diagnostics = [write_failure_diagnostic(config, exc)]
        diagnostics += result.diagnostics
        promoted = promote_warnings(diagnostics) if options.strict else diagnostics
        result.diagnostics = sorted_diagnostics(promoted)
        if written is None or result.written is None:
            result.written = None
            if loaded.converted and self._markups is not None:
                self._markups.flush()  # keep the conversions: the next build needs them
            return result
        graph, manifest = written
        discovered = set(inputs.discovered)
        head = StateHead(
            format=STATE_FORMAT,
            generator=generator,
            config_digest=config.digest,
            drafts=options.drafts,
            today=inputs.today,
            scanned_ns=inputs.scanned_ns,
            pages={rel: (r.stamp, r.digest) for rel, r in loaded.records.items()},
            data=inputs.data,
            templates=inputs.templates,
            statics=inputs.statics,
            manifest=manifest,
            marker=result.written.marker,
            searched=use_search,
            diagnostics=tuple(d for d in diagnostics if d not in discovered),
            html_pages=result.pages,
        )
        self._wrote = True
        with timer.stage("state"):
            body = StateBody(loaded.records, tokens, graph, session.closures, resolution)
            self._remember(BuildState(head, body), config, cache, loaded.converted > 0)
        return result

    def _check_only(
        self, session: RenderSession, plan: _Plan | None, timer: Timer, result: BuildResult
    ) -> None:
        """Nothing will be written (`check`, or errors already found), but templates are
        still checked on every node that could have changed (all without a previous build)."""
        with timer.stage("render"):
            rendered = session.render(
                plan.dirty if plan is not None else None,
                sink=_discard,
                workers=self.options.jobs or available_cpus(),
                progress=self._progress("render"),
            )
        result.rendered = frozenset(n.node for n in rendered.nodes)
        result.diagnostics = rendered.diagnostics

    # -- writing ---------------------------------------------------------------------------

    def _cold_write(
        self,
        session: RenderSession,
        inputs: _Inputs,
        config: Config,
        use_search: bool,
        timer: Timer,
        result: BuildResult,
    ) -> tuple[DepGraph, dict[str, str]] | None:
        """Render every node straight into a staging folder (in parallel), then swap it in.

        On template errors the staging folder is dropped, the errors go to
        `result.diagnostics`, and None is returned: the old site stays as it was.
        """
        staging = Staging(config.output_dir)
        try:
            update = GraphUpdate(DepGraph(), {}, session.fingerprinter())
            with timer.stage("render"):
                rendered = session.render(
                    None,
                    sink=staging.put,
                    workers=self.options.jobs or available_cpus(),
                    progress=self._progress("render"),
                    on_deps=update.add,
                )
            result.rendered = frozenset(n.node for n in rendered.nodes)
            result.workers = max(result.workers, rendered.workers)
            if has_errors(rendered.diagnostics):
                staging.abort()
                result.diagnostics = rendered.diagnostics
                return None
            manifest: dict[str, str] = {}
            changed: list[str] = []
            for node in rendered.nodes:
                manifest.update(node.files)
                changed += node.changed
            with timer.stage("write"):
                for static in static_files(inputs.tree, config):
                    digest = inputs.statics[static.rel.removeprefix("static/")][1]
                    manifest[static.rel] = digest
                    if staging.put_file(static.rel, static.source, digest):
                        changed.append(static.rel)
                before_swap = self._search_hook(timer) if use_search else None
                result.written = staging.commit(manifest, changed, before_swap)
        except BaseException:
            staging.abort()
            raise
        with timer.stage("graph"):
            graph = update.finish(session.wanted())
        return graph, manifest

    def _warm_write(
        self,
        plan: _Plan,
        session: RenderSession,
        inputs: _Inputs,
        config: Config,
        previous: BuildState,
        use_search: bool,
        timer: Timer,
        result: BuildResult,
    ) -> tuple[DepGraph, dict[str, str]] | None:
        """Render the dirty nodes in memory, then write only the files whose bytes changed."""
        body = previous.body
        assert body is not None
        update = GraphUpdate(body.graph, plan.changed_keys, plan.current)
        with timer.stage("render"):
            rendered = session.render(
                plan.dirty,
                workers=self.options.jobs or available_cpus(),
                progress=self._progress("render"),
                on_deps=update.add,
            )
        result.rendered = frozenset(n.node for n in rendered.nodes)
        result.workers = max(result.workers, rendered.workers)
        if has_errors(rendered.diagnostics):
            result.diagnostics = rendered.diagnostics
            return None
        with timer.stage("graph"):
            graph = update.finish(session.wanted())
        manifest = graph.output_manifest()
        for rel, (_, digest) in inputs.statics.items():
            manifest[f"static/{rel}"] = digest
        data = {rel: blob for n in rendered.nodes for rel, blob in n.data.items()}
        changed_statics = {
            f"static/{f.rel}": f.path
            for f in inputs.tree.static
            if previous.head.manifest.get(f"static/{f.rel}") != manifest[f"static/{f.rel}"]
            or f"static/{f.rel}" in plan.missing
        }
        current = {rel: d for rel, d in previous.head.manifest.items() if rel not in plan.missing}
        old_html = {rel: d for rel, d in current.items() if rel.endswith(".html")}
        new_html = {rel: d for rel, d in manifest.items() if rel.endswith(".html")}
        searched = previous.head.searched
        index_again = use_search and (not searched or old_html != new_html)
        with timer.stage("write"):
            if manifest == current and use_search == searched:
                result.written = WriteResult((), (), previous.head.marker)  # nothing to do
            elif not self._wrote or index_again or use_search != searched:
                # A `kbgen build` is one Builder's first build: it must swap atomically,
                # as must any build whose search index has to be made again (or dropped).
                result.written = self._restage(
                    config, manifest, data, changed_statics, index_again, use_search, timer
                )
            else:
                result.written = commit_incremental(
                    config.output_dir, manifest, data, changed_statics, old_manifest=current
                )
        return graph, manifest

    def _restage(
        self,
        config: Config,
        manifest: Mapping[str, str],
        data: Mapping[str, bytes],
        statics: Mapping[str, Path],
        index_again: bool,
        use_search: bool,
        timer: Timer,
    ) -> WriteResult:
        """Stage the whole site by hard-linking every unchanged file from the current one,
        writing the changed ones, then (re)index it for search or carry the old index over,
        and swap it in: atomic, at the cost of one link per file."""
        staging = Staging(config.output_dir)
        changed: list[str] = []
        try:
            for rel, digest in manifest.items():
                if rel in data:
                    _, is_new = staging.put(rel, data[rel])
                elif rel in statics:
                    is_new = staging.put_file(rel, statics[rel], digest)
                else:
                    staging.carry(rel, digest)
                    is_new = False
                if is_new:
                    changed.append(rel)
            if use_search and not index_again:
                from kbgen.search import BUNDLE_DIR

                index_again = not staging.carry_tree(BUNDLE_DIR)
        except BaseException:
            staging.abort()
            raise
        before_swap = self._search_hook(timer) if index_again else None
        return staging.commit(manifest, changed, before_swap)

    def _search_hook(self, timer: Timer) -> Callable[[Path], None]:
        from kbgen import search

        report = self._progress("search")

        def index(staging: Path) -> None:
            if report is not None:
                report(0, 1)  # Pagefind gives no progress of its own; show what is running
            with timer.stage("search"):
                search.index_site(staging)
            if report is not None:
                report(1, 1)

        return index

    # -- inputs ------------------------------------------------------------------------

    def _scan(self, config: Config, changed: set[Path] | None, trusted: bool) -> _Inputs:
        today = self.options.today or dt.date.today()
        forced = {p.absolute() for p in changed or ()}
        known = self._scanned if trusted and changed is not None else None
        if (
            known is not None
            and known.config_digest == config.digest
            and all(path in known.rels and os.path.isfile(path) for path in forced)
        ):
            # Stamps taken in this build are judged against the last full scan's time
            # (cache.stamp_trusted), which is what the unscanned files' stamps are from.
            tree, found, scanned_ns = known.tree, known.found, known.scanned_ns
        else:
            trusted = False
            scanned_ns = time.time_ns()
            tree, found = scan(config)
            known = _Scanned(config.digest, tree, found, scanned_ns)
            self._scanned = known
        force_pages = frozenset(filter(None, map(known.rels.get, forced)))
        state = self._state.head if self._state is not None else None

        def states(
            files: Iterable[SourceFile], old: Mapping[str, FileState]
        ) -> dict[str, FileState]:
            fresh: dict[str, FileState] = {}
            for file in files:
                stamp = stamp_of(file.path)
                prior = old.get(file.rel)
                if (
                    prior is not None
                    and file.path not in forced
                    and state is not None
                    and stamp_trusted(stamp, prior[0], state.scanned_ns)
                ):
                    fresh[file.rel] = prior
                    continue
                try:
                    fresh[file.rel] = (stamp, file_digest(file.path))
                except OSError:
                    fresh[file.rel] = (None, "")  # reported where the file is used
            return fresh

        return _Inputs(
            config=config,
            today=today,
            tree=tree,
            discovered=found,
            scanned_ns=scanned_ns,
            templates=states(tree.templates, state.templates if state else {}),
            statics=states(tree.static, state.statics if state else {}),
            data=states(tree.data.values(), state.data if state else {}),
            force_pages=force_pages,
            trusted=trusted,
        )

    def _previous_state(
        self, config: Config, cache: CacheDir | None, generator: str
    ) -> BuildState | None:
        """The last successful build of this variant, from memory or the cache folder."""
        state = self._state
        if state is None and cache is not None:
            found = load_state(cache, self._variant(config), StateHead, StateBody)
            if found is not None:
                state = BuildState(*found)
        if state is None or not _state_matches(state.head, config, generator, self.options.drafts):
            self._state = None
            return None
        self._state = state
        return state

    def _variant(self, config: Config) -> str:
        key = f"{config.path}\x00{config.output_dir}\x00drafts={self.options.drafts}"
        return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]

    def _unchanged(
        self, previous: BuildState, inputs: _Inputs, use_search: bool, timer: Timer
    ) -> bool:
        """True when this build would produce exactly the previous build's output."""
        head = previous.head
        if (
            head.today != inputs.today
            or _digests(head.templates) != _digests(inputs.templates)
            or _digests(head.statics) != _digests(inputs.statics)
            or _digests(head.data) != _digests(inputs.data)
            or set(head.pages) != {f.rel for f in inputs.tree.pages}
        ):
            return False
        for file in inputs.tree.pages:
            stamp, digest = head.pages[file.rel]
            if file.rel not in inputs.force_pages and (
                inputs.trusted or stamp_trusted(stamp_of(file.path), stamp, head.scanned_ns)
            ):
                continue
            try:  # a recent or reported file: unchanged only if its bytes are the same
                if not digest or file_digest(file.path) != digest:
                    return False
            except OSError:
                return False
        if not self.options.write:
            return True
        output = inputs.config.output_dir
        if use_search != head.searched or marker_digest(output) != head.marker:
            return False
        return inputs.trusted or not _missing_files(output, head.manifest)

    def _unchanged_result(self, previous: BuildState, inputs: _Inputs, timer: Timer) -> BuildResult:
        head = previous.head
        diagnostics = list(inputs.discovered) + list(head.diagnostics)
        if self.options.strict:
            diagnostics = promote_warnings(diagnostics)
        wrote = self.options.write and not has_errors(diagnostics)
        return BuildResult(
            sorted_diagnostics(diagnostics),
            pages=head.html_pages,
            written=WriteResult((), (), head.marker) if wrote else None,
            timings=timer.timings,
            output_dir=inputs.config.output_dir,
            mode="unchanged",
        )

    def _load(
        self,
        config: Config,
        cache: CacheDir | None,
        generator: str,
        inputs: _Inputs,
        glossary: list[GlossaryTerm],
        jobs: int,
    ) -> _Loaded:
        assert self._markups is not None
        context = LoadContext(
            config=config,
            glossary=tuple(glossary),
            engine_key=engine_key(generator, config.markdown.key(), glossary_digest(glossary)),
            today=inputs.today,
            cache_root=cache.root if cache is not None else None,
        )
        previous: Mapping[str, SourceRecord] = {}
        scanned_ns = 0
        known_pages: Mapping[str, Page] | None = None
        if self._records is not None and self._records[0] == config.digest:
            _, scanned_ns, previous = self._records
            known_pages = self._pages
        elif self._state is not None and self._state.body is not None:
            previous = self._state.body.records
            scanned_ns = self._state.head.scanned_ns
        outcome = load_pages(
            inputs.tree.pages,
            PageLoader(context, self._markups),
            previous,
            scanned_ns,
            force=inputs.force_pages,
            trusted=inputs.trusted,
            jobs=jobs,
            progress=self._progress("load"),
            known_pages=known_pages,
        )
        # Records depend only on the files, so they help the next build even if this fails.
        self._records = (config.digest, inputs.scanned_ns, outcome.records)
        self._pages = {page.rel: page for page in outcome.pages}
        self._markups.release()
        return _Loaded(
            outcome.pages, outcome.records, outcome.diagnostics, outcome.converted, outcome.workers
        )

    def _renderer_for(self, config: Config, templates: Mapping[str, FileState]) -> Renderer:
        """The Jinja2 environment, rebuilt only when the config or a template changed."""
        from kbgen.templates import Renderer

        key = (config.digest, frozenset((k, v[1]) for k, v in templates.items()))
        if self._renderer is None or self._renderer_key != key:
            cache = CacheDir(config.cache_dir) if self.options.cache else None
            # `check` writes nothing, Jinja2's bytecode cache included
            store = SealedBytecodeStore(cache) if cache and self.options.write else None
            self._renderer = Renderer(config, store)
            self._renderer_key = key
        return self._renderer

    def _remember(
        self, state: BuildState, config: Config, cache: CacheDir | None, converted: bool
    ) -> None:
        self._state = state
        assert self._markups is not None and state.body is not None
        live = [r.markup_key for r in state.body.records.values() if r.markup_key]
        self._markups.retain(live)
        if cache is not None:
            self._unsaved = (cache, self._variant(config))
            if not self.options.defer_state:
                self.save_state()
            if converted:
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
            _missing_files(output_dir, head.manifest)
        )

    @property
    def state_unsaved(self) -> bool:
        """The last successful build's state is not in the cache folder yet (`defer_state`)."""
        return self._unsaved is not None

    def save_state(self) -> None:
        """Write the last successful build's state to the cache folder, if not done yet,
        so that the next process (a `kbgen build`, a new `serve`) starts warm."""
        if self._unsaved is None or self._state is None or self._state.body is None:
            return
        from kbgen.resolve import portable

        cache, variant = self._unsaved
        body = self._state.body
        if body.resolution is not None:  # the pages' HTML is in the markup cache already
            body = dataclasses.replace(body, resolution=portable(body.resolution))
        save_state(cache, variant, self._state.head, body)
        # Only now: a save cut short (Ctrl-C or SIGTERM right after `serve` started) is
        # still owed, and the shutdown path writes it.
        self._unsaved = None

    def _progress(self, stage: str) -> Callable[[int, int], None] | None:
        report = self.options.progress
        if report is None:
            return None
        return lambda done, total: report(stage, done, total)


class _ReadOnlyMarkups(MarkupStore):
    """For `check`, which promises to write nothing: conversions the cache folder holds are
    read as usual, new ones are kept in memory only, and the folder is never created."""

    def put(self, key: str, markup: Markup, envelope: bytes | None = None) -> None:
        with self._lock:
            self._memory[key] = markup

    def flush(self, live_keys: Iterable[str] | None = None) -> None:
        return


@dataclass
class _Loaded:
    pages: list[Page]
    records: dict[str, SourceRecord]
    diagnostics: list[Diagnostic]
    converted: int
    workers: int


@dataclass
class _Plan:
    dirty: set[str]  #: nodes to render
    changed_keys: dict[int, Hashable]  #: dependency key id -> its new fingerprint
    current: Fingerprinter  #: fingerprints of this build's index
    missing: set[str]  #: outputs listed in the manifest but gone from the folder


def _plan(
    previous: BuildState,
    session: RenderSession,
    tokens: Mapping[str, tuple[str, str, str | None]],
    output_dir: Path,
    check_outputs: bool,
    delta: Mapping[str, frozenset[str]] | None,
) -> _Plan:
    """Which nodes must render again, from the recorded dependencies (see deps.py).
    `delta`: the index entries that can differ from the previous build's (None: any)."""
    body = previous.body
    assert body is not None
    stable = {key for key, token in tokens.items() if body.page_tokens.get(key) == token}
    current = session.fingerprinter()
    changed = body.graph.changed_keys(current, stable, delta)
    missing = _missing_files(output_dir, previous.head.manifest) if check_outputs else set()
    wanted = {
        node: files if files is not None else _recorded_files(body.graph, node)
        for node, files in session.wanted().items()
    }
    dirty = body.graph.dirty_nodes(wanted, changed.keys(), missing)
    return _Plan(dirty, changed, current, missing)


def _closures_if_current(
    previous: BuildState | None, templates: Mapping[str, FileState]
) -> dict[str, frozenset[str] | None]:
    """The previous build's template closures while every template is byte-for-byte the
    same (a copy: this build adds to it); otherwise start afresh."""
    if previous is None or _digests(previous.head.templates) != _digests(templates):
        return {}
    body = previous.body
    return dict(body.closures) if body is not None else {}


def _recorded_files(graph: DepGraph, node: str) -> tuple[str, ...]:
    record = graph.nodes.get(node)
    return tuple(rel for rel, _ in record.files) if record is not None else ()


def _missing_files(output_dir: Path, manifest: Mapping[str, str]) -> set[str]:
    """Outputs the manifest lists but the folder lacks (someone deleted them)."""
    root = str(output_dir)
    return {rel for rel in manifest if not os.path.isfile(os.path.join(root, rel))}


def _state_matches(state: StateHead, config: Config, generator: str, drafts: bool) -> bool:
    return (
        getattr(state, "format", None) == STATE_FORMAT
        and state.generator == generator
        and state.config_digest == config.digest
        and state.drafts == drafts
    )


def _page_tokens(
    pages: Iterable[Page], records: Mapping[str, SourceRecord]
) -> dict[str, tuple[str, str, str | None]]:
    """Page key -> what identifies its content: equal tokens mean an identical `Page`."""
    from kbgen.resolve import page_key

    return {page_key(p): (p.rel, p.digest, records[p.rel].markup_key) for p in pages}


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


def _digests(files: Mapping[str, FileState]) -> dict[str, str]:
    return {rel: digest for rel, (_, digest) in files.items()}


def _discard(rel: str, data: bytes) -> tuple[str, bool]:
    """A sink for builds that write nothing (`check`, or errors found before rendering)."""
    return "", False


def _cache_unusable(config: Config, cache: CacheDir) -> Diagnostic | None:
    """An error if the cache folder cannot be created or written (checked before any work,
    so the previous site stays as it was), else None."""
    try:
        cache.ensure()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        where = f" ({exc.filename})" if exc.filename and exc.filename != str(cache.root) else ""
        shown = config.rel(config.cache_dir)
        default = "" if config.cache_dir_at else " (the default)"
        message = f"cannot use cache_dir '{shown}'{default}: {reason}{where}"
        hint = (
            "make the folder writable, delete it (it only holds the build cache), or point "
            "cache_dir in config.yaml at a writable folder; nothing was built"
        )
        if config.cache_dir_at is None:
            return no_file_error(config.path.name, message, hint)
        return error(config.path.name, *config.cache_dir_at, message, hint)
    return None


def _assets_job() -> RenderJob:
    from kbgen.render import RenderJob

    def produce(view: object) -> list[OutputFile]:
        from kbgen.markup import pygments_css

        return [OutputFile("assets/pygments.css", pygments_css().encode(), "assets")]

    return RenderJob("assets", "assets/pygments.css", None, produce=produce)


__all__ = ["Builder"]
