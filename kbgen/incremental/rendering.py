"""Rendering many nodes for the incremental builder: recorded, streamed, in parallel.

Input: the `SiteIndex`, `Config` and `Renderer` of one build, and which nodes to render.
Output: `NodeResult`s (each node's files, streamed into a sink or kept in memory), template
diagnostics, and, with `template_digests` given, what each node read from the index (one
`DepBatch` per group of nodes) for the dependency graph. The jobs are the render stage's own
(`render.page_jobs`), so the bytes are the reference build's; only the view differs, and it
records reads without changing what they return.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import NamedTuple, cast

from kbgen.config_types import Config
from kbgen.diagnostics import Diagnostic
from kbgen.incremental.deps import DepBatch, DepBatchBuilder
from kbgen.incremental.fingerprints import DepKey, Fingerprinter
from kbgen.incremental.recording import Recorder, RecordingMapping, recording_index, template_keys
from kbgen.incremental.workers import PoolFactory, process_pool, shrinking_chunks, with_state
from kbgen.model import OutputFile
from kbgen.render import RenderJob, page_jobs, unique_outputs
from kbgen.routes import Router, SiteView
from kbgen.site_index import SiteIndex
from kbgen.templates import Renderer, TemplateProblem, merge_repeated

RENDER_PARALLEL_MIN = 200  #: fewer nodes than this render faster in-process than with a pool
Sink = Callable[[str, bytes], tuple[str, bool]]  #: (rel, bytes) -> (digest, changed)


@dataclass
class NodeResult:
    node: str
    files: tuple[tuple[str, str], ...]  #: (output rel, sha256) of each file written
    data: dict[str, bytes]  #: rel -> bytes, when kept in memory (no sink)
    changed: tuple[str, ...]  #: rels the sink reported as different from the old site


@dataclass
class RenderResult:
    nodes: list[NodeResult]
    diagnostics: list[Diagnostic]
    workers: int


DepsConsumer = Callable[[DepBatch, Mapping[str, tuple[tuple[str, str], ...]]], None]


class RenderSession:
    """All render jobs of one build, with the view they share.

    `render` renders a subset of nodes: in this process, or also in `workers - 1` forked
    helpers (a pool from the injected factory) that inherit the index and the compiled
    templates (each renders a share of the nodes and
    streams its files into the `sink`, so no process holds the whole site in memory). With
    `template_digests` given, each node's reads are recorded and handed to `on_deps` (one
    `DepBatch` per group of nodes, with fingerprints when workers computed them).
    Output bytes never depend on the number of workers.
    """

    def __init__(
        self,
        index: SiteIndex,
        config: Config,
        renderer: Renderer,
        extra_jobs: Iterable[RenderJob] = (),
        template_digests: Mapping[str, str] | None = None,
        closures: dict[str, frozenset[str] | None] | None = None,
    ) -> None:
        self.view = SiteView(index, config, Router(config.directory_urls))
        self.renderer = renderer
        renderer.timed_out.clear()  # a render that was stopped may finish with new data
        self.template_digests = template_digests
        self.jobs, self.diagnostics = unique_outputs([*page_jobs(self.view), *extra_jobs], config)
        #: template -> the templates it includes, transitively; the caller may keep this
        #: between builds while no template changes (working it out parses every template)
        self.closures = closures if closures is not None else {}
        self._closure_keys: dict[str, set[DepKey]] = {}

    def wanted(self) -> dict[str, tuple[str, ...] | None]:
        """Node -> the files it writes (None when only rendering can tell)."""
        return {job.node: (job.file,) if job.file is not None else None for job in self.jobs}

    def fingerprinter(self) -> Fingerprinter:
        return Fingerprinter(self.view.index, self.view._files, self.template_digests or {})

    def render(
        self,
        nodes: Collection[str] | None = None,
        *,
        sink: Sink | None = None,
        workers: int = 1,
        progress: Callable[[int, int], None] | None = None,
        on_deps: DepsConsumer | None = None,
        pools: PoolFactory = process_pool,
    ) -> RenderResult:
        """Render `nodes` (None: all); with `workers` > 1 and enough of them, in a pool
        from `pools` that this process works beside (see workers.py)."""
        chosen = [i for i, job in enumerate(self.jobs) if nodes is None or job.node in nodes]
        if workers > 1 and len(chosen) >= RENDER_PARALLEL_MIN:
            result = self._render_forked(chosen, sink, workers, progress, on_deps, pools)
            if result is not None:
                return dataclasses.replace(result, diagnostics=merge_repeated(result.diagnostics))
        results, diagnostics, batch = self._render_some(chosen, sink, progress=progress)
        if on_deps is not None and batch is not None:
            on_deps(batch, {n.node: n.files for n in results})
        return RenderResult(results, merge_repeated(diagnostics), 1)

    def _render_forked(
        self,
        chosen: list[int],
        sink: Sink | None,
        workers: int,
        progress: Callable[[int, int], None] | None,
        on_deps: DepsConsumer | None,
        pools: PoolFactory,
    ) -> RenderResult | None:
        for name in {self.jobs[i].template for i in chosen} - {None}:
            self._template_keys(str(name))  # parse templates once, before the workers fork
            self.renderer.preload(str(name))
        chunks = shrinking_chunks(chosen, workers, smallest=8, largest=128)
        # This process renders too, beside `workers - 1` forked helpers: it would otherwise
        # sit idle, and every helper ends up with a private copy of most of the site it
        # reads (reference counts write to the pages it shares with this process), the
        # largest part of a big build's peak memory. Chunks are claimed from a shared
        # counter, so whoever is free takes the next one.
        # Listing pages (home, sections, tags, site files) each read many pages and come
        # last in the job list; handed out first, they do not leave one process working
        # alone at the end.
        lists = [not all(self.jobs[i].template == "article.html" for i in c) for c in chunks]
        claims = _ChunkClaims(sorted(range(len(chunks)), key=lambda number: not lists[number]))
        done: dict[int, ChunkResult] = {}
        results: list[NodeResult] = []
        diagnostics: list[Diagnostic] = []
        passed = 0  #: chunks handed on in order: results, diagnostics and deps stay ordered

        def pass_on_finished() -> None:
            nonlocal passed
            while passed in done:
                part, problems, batch = done.pop(passed)
                passed += 1
                results.extend(part)
                diagnostics.extend(problems)
                if on_deps is not None and batch is not None:
                    on_deps(batch, {n.node: n.files for n in part})
                if progress is not None:
                    progress(len(results), len(chosen))

        # The helpers start with the session, the sink, the chunks and their claims: with
        # fork (required) they inherit them, the index and the compiled templates included.
        helping = _Helping(self, sink, chunks, claims)
        with pools(workers - 1, helping, require_fork=True) as pool:
            if pool is None:
                return None
            helped = pool.imap_unordered(with_state(_render_claimed), range(len(chunks)))
            while (number := claims.claim()) is not None:
                done[number] = self._render_some(chunks[number], sink, with_fingerprints=True)
                _collect(helped, done, wait=False)
                pass_on_finished()
            _collect(helped, done, wait=True)  # what the helpers are still rendering
            pass_on_finished()
        return RenderResult(results, diagnostics, workers)

    def _render_some(
        self,
        indices: list[int],
        sink: Sink | None,
        *,
        with_fingerprints: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> tuple[list[NodeResult], list[Diagnostic], DepBatch | None]:
        recording = self.template_digests is not None
        deps = DepBatchBuilder() if recording else None
        results: list[NodeResult] = []
        diagnostics: list[Diagnostic] = []
        for count, i in enumerate(indices, start=1):
            job = self.jobs[i]
            recorder = Recorder() if recording else None
            view = self._recording_view(recorder) if recorder is not None else self.view
            try:
                outputs = job.outputs(view, self.renderer)
            except TemplateProblem as problem:
                diagnostics.append(problem.diagnostic)
                if problem.diagnostic.message.startswith("template syntax error"):
                    break  # the same error would repeat for every page
                continue
            if recorder is not None and deps is not None:
                if job.template is not None:
                    recorder.keys |= self._template_keys(job.template)
                recorder.keys |= {("template", name) for name in job.presence_read}
                deps.add(job.node, recorder.keys)
            results.append(_node_result(job.node, outputs, sink))
            if progress is not None:
                progress(count, len(indices))
        if deps is None:
            return results, diagnostics, None
        return results, diagnostics, deps.batch(self.fingerprinter() if with_fingerprints else None)

    def _recording_view(self, recorder: Recorder) -> SiteView:
        view = copy.copy(self.view)  # a shallow copy: __post_init__ does not run again
        view.index = recording_index(self.view.index, recorder)
        view._files = cast(dict[str, str], RecordingMapping("files", self.view._files, recorder))
        return view

    def _template_keys(self, name: str) -> set[DepKey]:
        found = self._closure_keys.get(name)
        if found is None:
            if name not in self.closures:
                self.closures[name] = self.renderer.template_closure(name)
            found = template_keys(self.closures[name])
            self._closure_keys[name] = found
        return found


def assets_job() -> RenderJob:
    """The job writing the code-highlighting style sheet (the reference build adds the same
    file beside its render stage's outputs)."""

    def produce(view: object) -> list[OutputFile]:
        from kbgen.markup import pygments_css

        return [OutputFile("assets/pygments.css", pygments_css().encode(), "assets")]

    return RenderJob("assets", "assets/pygments.css", None, produce=produce)


def _node_result(node: str, outputs: list[OutputFile], sink: Sink | None) -> NodeResult:
    files: list[tuple[str, str]] = []
    data: dict[str, bytes] = {}
    changed: list[str] = []
    for output in outputs:
        if sink is not None:
            digest, is_new = sink(output.rel, output.data)
            if is_new:
                changed.append(output.rel)
        else:
            digest = hashlib.sha256(output.data).hexdigest()
            data[output.rel] = output.data
        files.append((output.rel, digest))
    return NodeResult(node, tuple(files), data, tuple(changed))


ChunkResult = tuple[list[NodeResult], list[Diagnostic], DepBatch | None]


class _ChunkClaims:
    """A counter shared with forked processes: each chunk is handed out once, in `order`."""

    def __init__(self, order: list[int]) -> None:
        import multiprocessing

        self.order = order  #: chunk numbers in the order they are handed out
        self._next = multiprocessing.get_context("fork").Value("i", 0)

    def claim(self) -> int | None:
        with self._next.get_lock():
            position = int(self._next.value)
            if position >= len(self.order):
                return None
            self._next.value = position + 1
            return self.order[position]


class _Helping(NamedTuple):
    """What forked render helpers start with (their pool state)."""

    session: RenderSession
    sink: Sink | None
    chunks: list[list[int]]
    claims: _ChunkClaims


def _render_claimed(helping: _Helping, _task: int) -> tuple[int, ChunkResult] | None:
    """One pool task, in a helper: render the next unclaimed chunk, if any is left."""
    number = helping.claims.claim()
    if number is None:
        return None
    chunk = helping.chunks[number]
    return number, helping.session._render_some(chunk, helping.sink, with_fingerprints=True)


def _collect(
    helped: Iterator[tuple[int, ChunkResult] | None], done: dict[int, ChunkResult], wait: bool
) -> None:
    """Move the helpers' finished chunks into `done`: those ready now, or (`wait`) all."""
    import multiprocessing

    while True:
        try:
            finished = helped.next(timeout=None if wait else 0)  # type: ignore[attr-defined]
        except (multiprocessing.TimeoutError, StopIteration):
            return
        if finished is not None:
            done[finished[0]] = finished[1]


