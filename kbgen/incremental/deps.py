"""Dependency tracking for incremental builds: which outputs can change after an edit.

Input: the `SiteIndex` of this build, the previous build's `DepGraph`, the templates' digests.
Output: the set of dependency nodes (`page:<key>`, `tag:<name>`, `tags`, `glossary`,
`bibliography`, `search`, `404`, `site-files`, `assets`) that must be rendered again, and,
after rendering, the updated graph.

Dependencies are *recorded*, not declared. While a node's template context is built, it sees
the `SiteIndex` through recording wrappers: every mapping lookup (`backlinks[k]`,
`pages_by_tag[t]`, ...), every iteration over a mapping's keys and every attribute read on a
page (`pages[k].meta.title`, `pages[k].markup.html`, ...) adds a dependency key. A key's
*fingerprint* is a stable digest of the value read. The next build recomputes the
fingerprints of the recorded keys from its new index; a node is dirty when one of its keys
changed, when its template closure changed, when it is new, or when its output file went
missing. So a body-only edit of page X changes only `("page", X, "markup.html")`-like keys,
which only X's own page reads: exactly one page renders. Because nothing is declared by hand,
a context function that starts reading something new is tracked automatically; anything it
could read outside the index (config, templates) invalidates the whole graph or is keyed
explicitly. Over-approximation costs time, never correctness; the incremental tests compare
every incremental build with a clean full build byte for byte.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import hashlib
import sys
from array import array
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, cast

from kbgen.model import Page

if TYPE_CHECKING:
    from kbgen.resolve import SiteIndex

DepKey = tuple[str, ...]
MISSING = "\x00missing"  #: fingerprint of something that does not exist
_INLINE_LIMIT = 96  #: canonical forms up to this length are kept as-is, longer ones hashed

V = TypeVar("V")


# -- recording -------------------------------------------------------------------------------


class Recorder:
    """Collects the dependency keys read while one node is built."""

    __slots__ = ("keys",)

    def __init__(self) -> None:
        self.keys: set[DepKey] = set()

    def add(self, key: DepKey) -> None:
        self.keys.add(key)


class RecordingMapping(Mapping[str, V]):
    """A read-only mapping that records each key looked up (and iteration over its keys)."""

    __slots__ = ("_data", "_name", "_recorder", "_wrap")

    def __init__(
        self,
        name: str,
        data: Mapping[str, V],
        recorder: Recorder,
        wrap: Callable[[str, V], V] | None = None,
    ) -> None:
        self._name = name
        self._data = data
        self._recorder = recorder
        self._wrap = wrap

    def __getitem__(self, key: str) -> V:
        self._recorder.add(("map", self._name, key))
        value = self._data[key]
        return self._wrap(key, value) if self._wrap is not None else value

    def get(self, key: str, default: Any = None) -> Any:
        self._recorder.add(("map", self._name, key))
        if key not in self._data:
            return default
        value = self._data[key]
        return self._wrap(key, value) if self._wrap is not None else value

    def __contains__(self, key: object) -> bool:
        self._recorder.add(("map", self._name, str(key)))
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        self._recorder.add(("keys", self._name))
        return iter(self._data)

    def __len__(self) -> int:
        self._recorder.add(("keys", self._name))
        return len(self._data)


_PLAIN_VALUES = frozenset({str, int, float, bool, type(None), dt.date, frozenset})


def _record_value(value: object, key: str, path: str, recorder: Recorder) -> Any:
    """Return `value` as read from page `key` at `path`, recording the read.

    Dataclass values and tuples of dataclasses come back as proxies, so reading
    `links[3].target` depends on that one field, not on every link and its position (a line
    added above a link must not re-render the pages showing where it points).
    """
    kind = type(value)
    if kind in _PLAIN_VALUES:  # most reads (titles, urls, dates): no proxy needed
        recorder.keys.add(("page", key, path))
        return value
    if callable(value):
        recorder.add(("page", key, "*"))  # a method could read anything
        return value
    if _field_names(kind) is not None:
        return _ObjectProxy(value, key, path, recorder)
    if isinstance(value, tuple) and value and _field_names(type(value[0])) is not None:
        return _SequenceProxy(value, key, path, recorder)
    recorder.add(("page", key, path))
    return value


class _ObjectProxy:
    """A dataclass inside a recorded page (`meta`, `markup`, one link): records each read."""

    __slots__ = ("_key", "_path", "_recorder", "_value")

    def __init__(self, value: object, key: str, path: str, recorder: Recorder) -> None:
        self._value = value
        self._key = key
        self._path = path
        self._recorder = recorder

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._value, name)
        return _record_value(value, self._key, f"{self._path}.{name}", self._recorder)

    def __eq__(self, other: object) -> bool:  # compares the whole value: depends on it
        self._recorder.add(("page", self._key, self._path))
        return self._value == _unwrapped(other)

    __hash__ = None  # type: ignore[assignment]


class _SequenceProxy:
    """A tuple of dataclasses inside a recorded page: indexing records one element."""

    __slots__ = ("_key", "_path", "_recorder", "_value")

    def __init__(self, value: tuple[object, ...], key: str, path: str, recorder: Recorder) -> None:
        self._value = value
        self._key = key
        self._path = path
        self._recorder = recorder

    def _whole(self) -> tuple[object, ...]:
        self._recorder.add(("page", self._key, self._path))
        return self._value

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return self._whole()[index]
        try:
            item = self._value[index]
        except IndexError:
            self._recorder.add(("page", self._key, f"{self._path}.#len"))
            raise
        position = index if index >= 0 else len(self._value) + index
        return _record_value(item, self._key, f"{self._path}.{position}", self._recorder)

    def __len__(self) -> int:
        self._recorder.add(("page", self._key, f"{self._path}.#len"))
        return len(self._value)

    def __bool__(self) -> bool:
        return len(self) > 0

    def __iter__(self) -> Iterator[object]:
        return iter(self._whole())

    def __contains__(self, item: object) -> bool:
        return item in self._whole()

    def __eq__(self, other: object) -> bool:
        return self._whole() == other

    __hash__ = None  # type: ignore[assignment]


class PageProxy:
    """A page as recorded nodes see it: attribute reads become dependency keys.

    `page.meta.title` records `("page", key, "meta.title")`, `page.markup.links[2].target`
    records `("page", key, "markup.links.2.target")`; a method call records the whole page
    (`"*"`).
    """

    __slots__ = ("_key", "_page", "_recorder")

    def __init__(self, page: Page, key: str, recorder: Recorder) -> None:
        self._page = page
        self._key = key
        self._recorder = recorder

    def __getattr__(self, name: str) -> Any:
        return _record_value(getattr(self._page, name), self._key, name, self._recorder)

    def __eq__(self, other: object) -> bool:  # compares the whole page: depends on it
        self._recorder.add(("page", self._key, "*"))
        return self._page == _unwrapped(other)

    __hash__ = None  # type: ignore[assignment]


def _unwrapped(value: object) -> object:
    if isinstance(value, PageProxy):
        return value._page
    if isinstance(value, _ObjectProxy):
        return value._value
    return value


def recording_index(index: SiteIndex, recorder: Recorder) -> SiteIndex:
    """The same index, with every mapping wrapped so reads land in `recorder`.

    Fields that are not mappings (the glossary tuple) cannot record individual reads, so the
    node depends on the whole field from the start: conservative, and automatic for fields
    added to `SiteIndex` later.
    """
    changes: dict[str, Any] = {}
    for spec in dataclasses.fields(index):
        value = getattr(index, spec.name)
        if spec.name == "pages":

            def wrap(key: str, page: Page) -> Page:
                return cast(Page, PageProxy(page, key, recorder))

            changes["pages"] = RecordingMapping("pages", value, recorder, wrap)
        elif isinstance(value, Mapping):
            changes[spec.name] = RecordingMapping(spec.name, value, recorder)
        else:
            recorder.add(("field", spec.name))
    return dataclasses.replace(index, **changes)


# -- fingerprints ----------------------------------------------------------------------------


_SCALARS = frozenset({str, int, float, bool, type(None)})


def canonical(value: object) -> str:
    """A text form that is equal exactly when the values are equal, in every process.

    (`repr` is not enough: set order depends on the per-process string hash seed.) Type
    checks are exact-type lookups first because this runs for every recorded key of every
    warm build; the ABC check for mappings is slow and comes last.
    """
    kind = type(value)
    if kind in _SCALARS:
        return repr(value)
    if kind is tuple or kind is list:
        items = cast(tuple[object, ...], value)
        if all(type(item) is str for item in items):
            return "(" + ",".join(map(repr, items)) + ")"
        return "(" + ",".join(map(canonical, items)) + ")"
    names = _field_names(kind)
    if names is not None:
        values = [getattr(value, name) for name in names]
        label = _dataclass_label(kind)
        if all(type(item) in _SCALARS for item in values):  # links, backlinks: one level
            return f"{label}[{','.join(map(repr, values))}]"
        return f"{label}[{','.join(map(canonical, values))}]"
    if isinstance(value, (frozenset, set)):
        return "{" + ",".join(sorted(map(canonical, value))) + "}"
    if isinstance(value, (dt.date, dt.datetime)):
        return f"{kind.__name__}({value.isoformat()})"
    if isinstance(value, enum.Enum):
        return f"{kind.__name__}.{value.name}"
    if isinstance(value, Mapping):
        return "<" + ",".join(f"{canonical(k)}:{canonical(v)}" for k, v in value.items()) + ">"
    if isinstance(value, (str, int, float, tuple)):  # subclasses of the fast cases
        return f"{kind.__name__}:{value!r}"
    # Unknown objects: repr may hold an address, which only ever makes the key look changed.
    return f"?{kind.__name__}:{value!r}"


_FIELD_NAMES: dict[type, tuple[str, ...] | None] = {}
_LABELS: dict[type, str] = {}


def _dataclass_label(cls: type) -> str:
    """The name of the dataclass that defines `cls`'s fields: a subclass that only changes
    how the value is stored (cache.LazyMarkup) has the same text form as its `Markup`."""
    label = _LABELS.get(cls)
    if label is None:
        owner = next(c for c in cls.__mro__ if "__dataclass_fields__" in c.__dict__)
        label = _LABELS[cls] = owner.__name__
    return label


def _field_names(cls: type) -> tuple[str, ...] | None:
    """A dataclass's field names (None for other types), looked up once per type."""
    try:
        return _FIELD_NAMES[cls]
    except KeyError:
        names = (
            tuple(f.name for f in dataclasses.fields(cls))
            if dataclasses.is_dataclass(cls)
            else None
        )
        _FIELD_NAMES[cls] = names
        return names


def fingerprint(value: object) -> Hashable:
    text = canonical(value)
    if len(text) <= _INLINE_LIMIT:
        return text
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


@dataclass
class Fingerprinter:
    """Computes the current fingerprint of any dependency key, memoised per build."""

    index: SiteIndex
    files: Mapping[str, str]  #: page key -> output file (the view's URL table)
    templates: Mapping[str, str]  #: template name -> digest of its source
    _memo: dict[DepKey, Hashable] = field(default_factory=dict)

    def __call__(self, key: DepKey) -> Hashable:
        found = self._memo.get(key)
        if found is None:
            found = self._compute(key)
            self._memo[key] = found
        return found

    def _compute(self, key: DepKey) -> Hashable:
        kind = key[0]
        if kind == "page":
            page = self.index.pages.get(key[1])
            if page is None:
                return MISSING
            if key[2] == "*":
                return fingerprint(page)
            return fingerprint(_follow(page, key[2]))
        if kind == "map":
            if key[1] == "pages":  # values are read through page keys; only presence here
                return key[2] in self.index.pages
            mapping = self._mapping(key[1])
            return MISSING if mapping is None else fingerprint(mapping.get(key[2], MISSING))
        if kind == "keys":
            mapping = self._mapping(key[1])
            return MISSING if mapping is None else fingerprint(tuple(mapping))
        if kind == "field":
            return fingerprint(getattr(self.index, key[1], MISSING))
        if kind == "template":
            return self.templates.get(key[1], MISSING)
        if kind == "templates":
            return fingerprint(sorted(self.templates.items()))
        return MISSING  # an unknown kind of key always counts as changed

    def _mapping(self, name: str) -> Mapping[str, object] | None:
        if name == "files":
            return self.files
        value = getattr(self.index, name, None)
        return value if isinstance(value, Mapping) else None


def _follow(page: Page, path: str) -> object:
    """The value at a recorded path: attribute names, tuple positions, `#len`."""
    value: object = page
    try:
        for part in path.split("."):
            if part == "#len":
                value = len(value)  # type: ignore[arg-type]
            elif part.isdigit():
                value = value[int(part)]  # type: ignore[index]
            else:
                value = getattr(value, part)
    except (AttributeError, IndexError, TypeError):
        return MISSING
    return value


def template_keys(closure: frozenset[str] | None) -> set[DepKey]:
    """Keys for a template and everything it extends/includes; None = a dynamic include."""
    if closure is None:
        return {("templates",)}
    return {("template", name) for name in closure}


# -- the graph --------------------------------------------------------------------------------


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
