"""Rendering and writing for the incremental builder: cold into staging, warm file by file.

Input: the build's render session, its inputs and, for a warm build, the plan, the last
state and the rebuild policy's effects. Output: a `Written` value (the nodes rendered, the
template diagnostics, the `WriteResult`, the new dependency graph and output manifest);
nothing is passed back by mutation.

* cold: every node is rendered straight into a staging folder (in parallel), static files
  are linked in, Pagefind indexes it, and it is swapped in atomically;
* warm: the dirty nodes are rendered in memory; only files whose bytes changed are written,
  in place (`commit_incremental`, under `serve`), or through a restaged copy of the site
  when the swap must be atomic (a `kbgen build`) or the search index is made again;
* check: nodes are rendered into nothing (`check`, or errors already found).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from kbgen.config_types import Config
from kbgen.diagnostics import Diagnostic, has_errors
from kbgen.incremental.cache import CacheDir
from kbgen.incremental.deps import DepGraph, GraphUpdate
from kbgen.incremental.inputs import Inputs
from kbgen.incremental.plan import Plan
from kbgen.incremental.policy import Effect
from kbgen.incremental.state import BuildState
from kbgen.incremental.workers import PoolFactory
from kbgen.pipeline import Timer, static_files
from kbgen.write import Staging, WriteResult, commit_incremental

if TYPE_CHECKING:
    from kbgen.incremental.rendering import RenderResult, RenderSession, Sink

Progress = Callable[[int, int], None] | None


class Written(NamedTuple):
    """What rendering and writing one build did."""

    rendered: frozenset[str]  #: nodes rendered
    workers: int  #: processes that rendered
    diagnostics: list[Diagnostic]  #: template problems (nothing was written if any is an error)
    written: WriteResult | None = None  #: None: nothing written
    graph: DepGraph | None = None  #: the dependency graph of the site now in the folder
    manifest: dict[str, str] | None = None  #: output file -> digest, of that site


@dataclass(frozen=True)
class Writer:
    """How one build renders and writes: its settings, shared by the three ways."""

    config: Config
    inputs: Inputs
    timer: Timer
    use_search: bool
    workers: int  #: processes to render with
    pools: PoolFactory
    progress: Callable[[str], Progress]  #: stage -> progress callback
    first_write: bool  #: this Builder has not written the folder yet: swap atomically
    #: where the search index keeps its per-page records (None: every index is a full run)
    cache: CacheDir | None = None

    def check_only(self, session: RenderSession, plan: Plan | None) -> Written:
        """Nothing will be written (`check`, or errors already found), but templates are
        still checked on every node that could have changed (all without a plan)."""
        rendered = self._render(session, plan.dirty if plan is not None else None, _discard)
        return Written(_nodes(rendered), rendered.workers, rendered.diagnostics)

    def cold(self, session: RenderSession) -> Written:
        """Render every node straight into a staging folder (in parallel), then swap it in.
        On template errors the staging folder is dropped and the old site stays as it was."""
        staging = Staging(self.config.output_dir)
        try:
            update = GraphUpdate(DepGraph(), {}, session.fingerprinter())
            rendered = self._render(session, None, staging.put, update)
            if has_errors(rendered.diagnostics):
                staging.abort()
                return Written(_nodes(rendered), rendered.workers, rendered.diagnostics)
            manifest: dict[str, str] = {}
            changed: list[str] = []
            for node in rendered.nodes:
                manifest.update(node.files)
                changed += node.changed
            with self.timer.stage("write"):
                for static in static_files(self.inputs.tree, self.config):
                    digest = self.inputs.statics[static.rel.removeprefix("static/")][1]
                    manifest[static.rel] = digest
                    if staging.put_file(static.rel, static.source, digest):
                        changed.append(static.rel)
                before_swap = self._search_hook(manifest) if self.use_search else None
                written = staging.commit(manifest, changed, before_swap)
        except BaseException:
            staging.abort()
            raise
        with self.timer.stage("graph"):
            graph = update.finish(session.wanted())
        return Written(
            _nodes(rendered), rendered.workers, rendered.diagnostics, written, graph, manifest
        )

    def warm(
        self, plan: Plan, session: RenderSession, previous: BuildState, effects: Effect
    ) -> Written:
        """Render the dirty nodes in memory, then write only the files whose bytes changed."""
        body = previous.body
        assert body is not None
        update = GraphUpdate(body.graph, plan.changed_keys, plan.current)
        rendered = self._render(session, plan.dirty, None, update)
        if has_errors(rendered.diagnostics):
            return Written(_nodes(rendered), rendered.workers, rendered.diagnostics)
        with self.timer.stage("graph"):
            graph = update.finish(session.wanted())
        manifest = graph.output_manifest()
        for rel, (_, digest) in self.inputs.statics.items():
            manifest[f"static/{rel}"] = digest
        with self.timer.stage("write"):
            written = self._write_changed(rendered, manifest, plan, previous, effects)
        return Written(
            _nodes(rendered), rendered.workers, rendered.diagnostics, written, graph, manifest
        )

    def _write_changed(
        self,
        rendered: RenderResult,
        manifest: dict[str, str],
        plan: Plan,
        previous: BuildState,
        effects: Effect,
    ) -> WriteResult:
        head = previous.head
        data = {rel: blob for n in rendered.nodes for rel, blob in n.data.items()}
        statics: dict[str, Path] = {}
        if Effect.COPY_STATIC in effects:
            for file in self.inputs.tree.static:
                rel = f"static/{file.rel}"
                if head.manifest.get(rel) != manifest[rel] or rel in plan.missing:
                    statics[rel] = file.path
        current = {rel: d for rel, d in head.manifest.items() if rel not in plan.missing}
        html_changed = _html(current) != _html(manifest)
        index_again = self.use_search and (
            not head.searched or (Effect.REINDEX_SEARCH in effects and html_changed)
        )
        if manifest == current and Effect.RESTAGE not in effects:
            return WriteResult((), (), head.marker)  # nothing to do
        if self.first_write or index_again or Effect.RESTAGE in effects:
            # A `kbgen build` is one Builder's first build: it must swap atomically, as must
            # any build whose search index has to be made again (or dropped).
            return self._restage(manifest, data, statics, index_again)
        return commit_incremental(
            self.config.output_dir, manifest, data, statics, old_manifest=current
        )

    def _restage(
        self,
        manifest: Mapping[str, str],
        data: Mapping[str, bytes],
        statics: Mapping[str, Path],
        index_again: bool,
    ) -> WriteResult:
        """Stage the whole site by hard-linking every unchanged file from the current one,
        writing the changed ones, then (re)index it for search or carry the old index over,
        and swap it in: atomic, at the cost of one link per file."""
        staging = Staging(self.config.output_dir)
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
            if self.use_search and not index_again:
                from kbgen.search import BUNDLE_DIR

                index_again = not staging.carry_tree(BUNDLE_DIR)
        except BaseException:
            staging.abort()
            raise
        before_swap = self._search_hook(manifest) if index_again else None
        return staging.commit(manifest, changed, before_swap)

    def _render(
        self,
        session: RenderSession,
        nodes: set[str] | None,
        sink: Sink | None,
        update: GraphUpdate | None = None,
    ) -> RenderResult:
        with self.timer.stage("render"):
            return session.render(
                nodes,
                sink=sink,
                workers=self.workers,
                progress=self.progress("render"),
                on_deps=update.add if update is not None else None,
                pools=self.pools,
            )

    def _search_hook(self, manifest: Mapping[str, str]) -> Callable[[Path], None]:
        from kbgen.incremental import search_index
        from kbgen.search import BUNDLE_DIR

        report = self.progress("search")
        timer = self.timer
        # the live site's bundle is the last one written: an edit links its unchanged files;
        # the manifest's digests are of the HTML this build staged (written or carried)
        previous = self.config.output_dir / BUNDLE_DIR
        digests = _html(manifest)

        def index(staging: Path) -> None:
            if report is not None:
                report(0, 1)  # Pagefind gives no progress of its own; show what is running
            with timer.stage("search"):
                search_index.index_site(staging, self.cache, previous=previous, digests=digests)
            if report is not None:
                report(1, 1)

        return index


def _nodes(rendered: RenderResult) -> frozenset[str]:
    return frozenset(n.node for n in rendered.nodes)


def _html(manifest: Mapping[str, str]) -> dict[str, str]:
    return {rel: digest for rel, digest in manifest.items() if rel.endswith(".html")}


def _discard(rel: str, data: bytes) -> tuple[str, bool]:
    """A sink for builds that write nothing (`check`, or errors found before rendering)."""
    return "", False


__all__ = ["Writer", "Written"]
