"""The dependency graph of incremental builds: which outputs can change after an edit.

Input: the previous build's `DepGraph`, this build's `Fingerprinter` (fingerprints.py), and
the keys each rendered node read (recording.py), in batches from the render workers.
Output: the set of dependency nodes (`page:<key>`, `tag:<name>`, `tags`, `glossary`,
`bibliography`, `search`, `404`, `site-files`, `assets`) that must be rendered again, and,
after rendering, the updated graph.

Dependencies are *recorded*, not declared. While a node's template context is built, it sees
the `SiteIndex` through recording wrappers (recording.py): every mapping lookup, every
iteration over a mapping's keys and every attribute read on a page adds a dependency key. A
key's *fingerprint* is a stable digest of the value read (fingerprints.py). The next build
recomputes the fingerprints of the recorded keys from its new index; a node is dirty when one
of its keys changed, when its template closure changed, when it is new, or when its output
file went missing. So a body-only edit of page X changes only `("page", X, "markup.html")`-like
keys, which only X's own page reads: exactly one page renders. Because nothing is declared by
hand, a context function that starts reading something new is tracked automatically; anything
it could read outside the index (config, templates) invalidates the whole graph or is keyed
explicitly. Over-approximation costs time, never correctness; the incremental tests compare
every incremental build with a clean full build byte for byte.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kbgen.incremental.fingerprints import DepKey, Fingerprinter


@dataclass(frozen=True, slots=True)
class NodeRecord:
    """What one node produced last time and what it read to produce it."""

    files: tuple[tuple[str, str], ...]  #: (output rel, digest) of each file it wrote
    packed_deps: bytes  #: ids into DepGraph.keys, as unsigned 32-bit ints (compact to save)

    @classmethod
    def of(cls, files: tuple[tuple[str, str], ...], deps: Iterable[int]) -> NodeRecord:
        return cls(files, array("I", sorted(deps)).tobytes())

    @property
    def deps(self) -> array[int]:
        ids: array[int] = array("I")
        ids.frombytes(self.packed_deps)
        return ids


@dataclass
class DepGraph:
    """Nodes of the last successful build and the fingerprints of everything they read.

    Invariant after every successful build: `fingerprints[i]` is the value of `keys[i]` in
    that build's index, for every key any node depends on. So comparing a new build's
    fingerprints with these tells exactly which keys changed since the outputs were made.
    """

    keys: list[DepKey] = field(default_factory=list)
    fingerprints: list[Hashable] = field(default_factory=list)
    nodes: dict[str, NodeRecord] = field(default_factory=dict)
    #: node records replaced or dropped since unused keys were last looked for: only they
    #: can leave keys unused, so small edits need not scan every node's keys
    churn: int = 0
    _ids: dict[DepKey, int] = field(default_factory=dict, repr=False)
    _groups: _KeyGroups | None = field(default=None, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        return {
            "keys": self.keys,
            "fingerprints": self.fingerprints,
            "nodes": self.nodes,
            "churn": self.churn,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.keys = state["keys"]
        self.fingerprints = state["fingerprints"]
        self.nodes = state["nodes"]
        self.churn = state.get("churn", 0)
        self._ids = {key: i for i, key in enumerate(self.keys)}
        self._groups = None

    def copy(self) -> DepGraph:
        graph = DepGraph(list(self.keys), list(self.fingerprints), dict(self.nodes), self.churn)
        graph._ids = dict(self._ids)
        graph._groups = self._groups  # still true of the copy's first `count` keys
        return graph

    def _key_groups(self) -> _KeyGroups:
        """The keys grouped by what can change them; built once, then shared by copies.

        A copy only appends keys (compaction makes a new graph without groups), so groups
        made for the first `count` keys stay true, and later keys are checked one by one.
        """
        if self._groups is None:
            self._groups = _KeyGroups.of(self.keys)
        return self._groups

    def changed_keys(
        self,
        current: Fingerprinter,
        stable_pages: frozenset[str] | set[str],
        index_delta: Mapping[str, frozenset[str]] | None = None,
    ) -> dict[int, Hashable]:
        """Key id -> new fingerprint, for every key whose value differs now.

        Keys about a page in `stable_pages` (same file, same conversion as last time) cannot
        have changed and are not recomputed. `index_delta`, when known, names the only
        entries of the index's mappings that can differ (mapping -> keys; the key sets, the
        other fields and the URL table are the same): then only those are recomputed, and a
        warm build costs one cheap pass over the keys plus work proportional to the edit.
        """
        changed: dict[int, Hashable] = {}
        keys, fingerprints = self.keys, self.fingerprints

        def check(i: int) -> None:
            value = current(keys[i])
            if value != fingerprints[i]:
                changed[i] = value

        # The same test as `_may_have_changed`, a group at a time: serve's save at 10,000
        # pages would otherwise spend most of its planning in a loop over 200,000 keys.
        groups = self._key_groups()
        for page, ids in groups.by_page.items():
            if page not in stable_pages:
                for i in ids:
                    check(i)
        if index_delta is None:
            for ids in groups.by_entry.values():
                for i in ids:
                    check(i)
            for i in groups.other:
                check(i)
        else:
            for mapping, entries in index_delta.items():
                for entry in entries:
                    for i in groups.by_entry.get((mapping, entry), ()):
                        check(i)
        for i in groups.templates:
            check(i)
        for i in range(groups.count, len(keys)):  # appended since the groups were made
            if _may_have_changed(keys[i], stable_pages, index_delta):
                check(i)
        return dict(sorted(changed.items()))

    def dirty_nodes(
        self,
        wanted: Mapping[str, tuple[str, ...]],
        changed: Iterable[int],
        missing_files: Iterable[str] = (),
    ) -> set[str]:
        """Nodes to render: new, moved, reading a changed key, or with a file gone missing.

        `wanted` maps each node of this build to the output files it will write.
        """
        changed_ids = set(changed)
        reads_changed = _reader_of(changed_ids)
        missing = set(missing_files)
        dirty: set[str] = set()
        for node, files in wanted.items():
            record = self.nodes.get(node)
            if (
                record is None
                or tuple(rel for rel, _ in record.files) != files
                or reads_changed(record)
                or (missing and any(rel in missing for rel in files))
            ):
                dirty.add(node)
        return dirty

    def intern(self, key: DepKey, value: Hashable) -> int:
        self._ids[key] = len(self.keys)
        self.keys.append(key)
        self.fingerprints.append(value)
        return len(self.keys) - 1

    def updated(
        self,
        changed: Mapping[int, Hashable],
        rendered: Mapping[str, tuple[tuple[tuple[str, str], ...], frozenset[DepKey]]],
        current: Fingerprinter,
        wanted: Iterable[str],
        known: Mapping[DepKey, Hashable] | None = None,
    ) -> DepGraph:
        """The graph after this build, from node -> (files, keys read); see GraphUpdate."""
        update = GraphUpdate(self, changed, current)
        batch = DepBatchBuilder()
        for node, (_, keys) in rendered.items():
            batch.add(node, keys)
        done = batch.batch(None)
        if known:
            done.fingerprints = [known.get(k, _UNKNOWN) for k in done.keys]
        update.add(done, {node: files for node, (files, _) in rendered.items()})
        return update.finish(wanted)

    def compacted_if_churned(self) -> DepGraph:
        """`compacted()`, once enough node records changed to make unused keys likely."""
        if self.churn * 4 < len(self.nodes):
            return self
        self.churn = 0
        return self.compacted()

    def compacted(self) -> DepGraph:
        """Drop keys no node reads any more (when they are a sizeable share)."""
        used: set[int] = set()
        for record in self.nodes.values():
            used.update(record.deps)
        if len(used) >= 0.75 * len(self.keys):
            return self
        order = sorted(used)
        remap = {old: new for new, old in enumerate(order)}
        graph = DepGraph(
            [self.keys[i] for i in order],
            [self.fingerprints[i] for i in order],
            {
                node: NodeRecord.of(record.files, (remap[i] for i in record.deps))
                for node, record in self.nodes.items()
            },
        )
        graph._ids = {key: i for i, key in enumerate(graph.keys)}
        return graph

    def output_manifest(self) -> dict[str, str]:
        """Output rel -> digest of every file the graph's nodes wrote."""
        return {rel: digest for record in self.nodes.values() for rel, digest in record.files}


def _may_have_changed(
    key: DepKey,
    stable_pages: frozenset[str] | set[str],
    index_delta: Mapping[str, frozenset[str]] | None,
) -> bool:
    """Whether `changed_keys` must recompute `key` (see there)."""
    kind = key[0]
    if kind == "page":
        return key[1] not in stable_pages
    if index_delta is None or kind in ("template", "templates"):
        return True
    return kind == "map" and key[2] in index_delta.get(key[1], ())


@dataclass(frozen=True, slots=True)
class _KeyGroups:
    """Ids of a graph's first `count` keys, grouped for `DepGraph.changed_keys`."""

    count: int
    by_page: dict[str, list[int]]  #: ("page", key, path) keys, by page key
    by_entry: dict[tuple[str, str], list[int]]  #: ("map", mapping, entry) keys
    templates: list[int]  #: ("template", name) and ("templates",): always checked
    other: list[int]  #: the rest (mapping key sets, index fields): unchanged by a delta

    @classmethod
    def of(cls, keys: list[DepKey]) -> _KeyGroups:
        by_page: dict[str, list[int]] = {}
        by_entry: dict[tuple[str, str], list[int]] = {}
        templates: list[int] = []
        other: list[int] = []
        for i, key in enumerate(keys):
            kind = key[0]
            if kind == "page":
                by_page.setdefault(key[1], []).append(i)
            elif kind == "map":
                by_entry.setdefault((key[1], key[2]), []).append(i)
            elif kind == "template" or kind == "templates":
                templates.append(i)
            else:
                other.append(i)
        return cls(len(keys), by_page, by_entry, templates, other)


_UNKNOWN = object()  #: a fingerprint the sender did not compute
_FEW_IDS = 16  #: up to this many changed keys, node records are searched without unpacking


def _reader_of(changed_ids: set[int]) -> Callable[[NodeRecord], bool]:
    """A test for "this node read one of `changed_ids`".

    A warm build after one edit changes a handful of keys, and every node must be tested:
    searching each record's packed ids for those few byte patterns (aligned to whole ids)
    avoids unpacking 10,000 arrays into sets.
    """
    if not changed_ids:
        return lambda record: False
    if len(changed_ids) > _FEW_IDS:
        return lambda record: not changed_ids.isdisjoint(record.deps)
    size = array("I").itemsize
    needles = [array("I", [i]).tobytes() for i in sorted(changed_ids)]

    def reads(record: NodeRecord) -> bool:
        packed = record.packed_deps
        for needle in needles:
            at = packed.find(needle)
            while at != -1:
                if at % size == 0:
                    return True
                at = packed.find(needle, at + 1)
        return False

    return reads


@dataclass
class DepBatch:
    """What a group of rendered nodes read, each distinct key listed once.

    Render workers send one per chunk of nodes: keys shared by the chunk (the sidebar's
    sections, say) travel once, as do their fingerprints, computed where the index already
    is. A 10,000-page build would otherwise ship and hold 1.6 million key tuples.
    """

    keys: list[DepKey]
    fingerprints: list[Hashable] | None  #: aligned with keys; None: compute them on arrival
    nodes: dict[str, bytes]  #: node -> unsigned 32-bit indexes into keys


class DepBatchBuilder:
    def __init__(self) -> None:
        self._index: dict[DepKey, int] = {}
        self._keys: list[DepKey] = []
        self._nodes: dict[str, bytes] = {}

    def add(self, node: str, keys: Iterable[DepKey]) -> None:
        index = self._index
        ids = array("I")
        for key in keys:
            found = index.get(key)
            if found is None:
                found = index[key] = len(self._keys)
                self._keys.append(key)
            ids.append(found)
        self._nodes[node] = ids.tobytes()

    def batch(self, current: Fingerprinter | None) -> DepBatch:
        fingerprints = [current(key) for key in self._keys] if current is not None else None
        return DepBatch(self._keys, fingerprints, self._nodes)


class GraphUpdate:
    """Builds the graph after a build from the previous one, as rendered nodes report in.

    Batches are merged as they arrive, so at no point are all nodes' key sets held at once.
    """

    def __init__(
        self, base: DepGraph, changed: Mapping[int, Hashable], current: Fingerprinter
    ) -> None:
        self.graph = base.copy()
        for i, value in changed.items():
            self.graph.fingerprints[i] = value
        self.current = current

    def add(self, batch: DepBatch, files: Mapping[str, tuple[tuple[str, str], ...]]) -> None:
        graph = self.graph
        to_global = array("I")
        for position, key in enumerate(batch.keys):
            found = graph._ids.get(key)
            if found is None:
                # A key read for the first time. Existing keys are already current: unchanged
                # when checked, updated above, or about a page that is byte-for-byte the same.
                value = batch.fingerprints[position] if batch.fingerprints is not None else _UNKNOWN
                if value is _UNKNOWN:
                    value = self.current(key)
                # Keys arrive unpickled from workers, each with its own copies of strings
                # like "meta.title"; interning shares them (tens of MB at 10,000 pages).
                found = graph.intern(tuple(map(sys.intern, key)), value)
            to_global.append(found)
        for node, packed in batch.nodes.items():
            local = array("I")
            local.frombytes(packed)
            if node in graph.nodes:
                graph.churn += 1
            graph.nodes[node] = NodeRecord.of(files[node], (to_global[i] for i in local))

    def finish(self, wanted: Iterable[str]) -> DepGraph:
        """Drop nodes this build no longer has, then unused keys (when worth looking)."""
        live = set(wanted)
        graph = self.graph
        kept = {n: r for n, r in graph.nodes.items() if n in live}
        graph.churn += len(graph.nodes) - len(kept)
        graph.nodes = kept
        return graph.compacted_if_churned()
