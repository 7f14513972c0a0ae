"""Planning an incremental build: what changed since the last one, and what to render again.

Input: the last successful build's state (or why there is none), this build's `Inputs`, and
after resolving, the render session and the resolution's delta.
Output: `Changes`, the kinds of change found, named as the rebuild policy names them
(kbgen/incremental/policy.py; their `effects` are the policy's answer), with the outputs gone
from the folder; and for a warm build the `Plan`: the nodes whose recorded dependencies
changed (kbgen/incremental/deps.py), which are the only ones rendered again.

Detection is by stamps and digests (and a watcher's report): it says *that* a page file
changed, as `Change.PAGE_BODY` at least; what the edit changed for other pages (a title, a
link target) is found by the resolve (kbgen/incremental/resolving.py).
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from kbgen.incremental.inputs import Inputs
from kbgen.incremental.policy import Change, Effect, effects_of
from kbgen.incremental.stamps import stamp_of, stamp_trusted
from kbgen.incremental.state import BuildState, FileState, PageToken, StateHead
from kbgen.model import Page
from kbgen.write_manifest import file_digest

if TYPE_CHECKING:  # a no-change build needs only `changes_since`: it imports none of these
    from kbgen.incremental.deps import DepGraph
    from kbgen.incremental.fingerprints import Fingerprinter
    from kbgen.incremental.loading import SourceRecord
    from kbgen.incremental.rendering import RenderSession

#: data file -> the change its edit is
DATA_CHANGES = {
    "references.yaml": Change.REFERENCES,
    "glossary.yaml": Change.GLOSSARY,
    "timeline.yaml": Change.TIMELINE,
}


class Changes(NamedTuple):
    """What changed since the last successful build."""

    kinds: frozenset[Change]
    missing: frozenset[str] = frozenset()  #: outputs the manifest lists but the folder lacks

    @property
    def effects(self) -> Effect:
        return effects_of(self.kinds)


def changes_since(
    previous: BuildState | None,
    why_none: Change | None,
    inputs: Inputs,
    *,
    use_search: bool,
    write: bool,
    output_marker: str | None,
) -> Changes:
    """The kinds of change between the last successful build and these inputs (only the
    head of the state is read: a build that finds none needs nothing else).

    `output_marker`: the digest of the output folder's marker file as this build began
    (`write_manifest.marker_digest`, which the builder takes anyway to notice a folder
    replaced during the build; hashing the marker again here cost ~3 M instructions an edit
    at 1,000 pages)."""
    if previous is None:
        return Changes(frozenset({why_none or Change.NO_STATE}))
    head = previous.head
    kinds = _source_changes(head, inputs)
    missing: frozenset[str] = frozenset()
    if write:
        output = inputs.config.output_dir
        if output_marker != head.marker:
            kinds.add(Change.OUTPUT_REPLACED)  # all is rendered again: no need to look
        elif not inputs.trusted:
            missing = frozenset(missing_files(output, head.manifest))
        if missing:
            kinds.add(Change.OUTPUT_MISSING)
        if use_search != head.searched:
            kinds.add(Change.SEARCH_TOGGLED)
    return Changes(frozenset(kinds), missing)


def _source_changes(head: StateHead, inputs: Inputs) -> set[Change]:
    kinds: set[Change] = set()
    if head.today != inputs.today:
        kinds.add(Change.DATE)
    if digests(head.templates) != digests(inputs.templates):
        kinds.add(Change.TEMPLATE)
    if digests(head.statics) != digests(inputs.statics):
        kinds.add(Change.STATIC)
    for name in head.data.keys() | inputs.data.keys():
        if head.data.get(name, (None, None))[1] != inputs.data.get(name, (None, None))[1]:
            kinds.add(DATA_CHANGES.get(name, Change.REFERENCES))
    rels = {file.rel for file in inputs.tree.pages}
    if rels - head.pages.keys():
        kinds.add(Change.PAGE_ADDED)
    if head.pages.keys() - rels:
        kinds.add(Change.PAGE_DELETED)
    if _a_page_edited(head, inputs):
        kinds.add(Change.PAGE_BODY)
    return kinds


def _a_page_edited(head: StateHead, inputs: Inputs) -> bool:
    """Whether any page file the last build knew has other bytes now (it stops at the
    first: the load stage finds the others)."""
    for file in inputs.tree.pages:
        known = head.pages.get(file.rel)
        if known is None:
            continue  # new: PAGE_ADDED
        stamp, digest = known
        if file.rel not in inputs.force_pages and (
            inputs.trusted or stamp_trusted(stamp_of(file.path), stamp, head.scanned_ns)
        ):
            continue
        try:  # a recent or reported file: unchanged only if its bytes are the same
            if not digest or file_digest(file.path) != digest:
                return True
        except OSError:
            return True
    return False


class Plan(NamedTuple):
    """What a warm build renders again, and what it needs to update the graph afterwards."""

    dirty: set[str]  #: nodes to render
    changed_keys: dict[int, Hashable]  #: dependency key id -> its new fingerprint
    current: Fingerprinter  #: fingerprints of this build's index
    missing: frozenset[str]  #: outputs listed in the manifest but gone from the folder


def plan_renders(
    previous: BuildState,
    session: RenderSession,
    tokens: Mapping[str, PageToken],
    missing: frozenset[str],
    delta: Mapping[str, frozenset[str]] | None,
) -> Plan:
    """Which nodes must render again, from the recorded dependencies (see deps.py).
    `delta`: the index entries that can differ from the previous build's (None: any)."""
    body = previous.body
    assert body is not None
    stable = {key for key, token in tokens.items() if body.page_tokens.get(key) == token}
    current = session.fingerprinter()
    changed = body.graph.changed_keys(current, stable, delta)
    wanted = {
        node: files if files is not None else _recorded_files(body.graph, node)
        for node, files in session.wanted().items()
    }
    dirty = body.graph.dirty_nodes(wanted, changed.keys(), set(missing))
    return Plan(dirty, changed, current, missing)


def closures_if_current(
    previous: BuildState | None, templates: Mapping[str, FileState]
) -> dict[str, frozenset[str] | None]:
    """The previous build's template closures while every template is byte-for-byte the
    same (a copy: this build adds to it); otherwise start afresh."""
    if previous is None or digests(previous.head.templates) != digests(templates):
        return {}
    body = previous.body
    return dict(body.closures) if body is not None else {}


def page_tokens(
    pages: Iterable[Page], records: Mapping[str, SourceRecord]
) -> dict[str, PageToken]:
    """Page key -> what identifies its content: equal tokens mean an identical `Page`."""
    from kbgen.site_index import page_key

    return {page_key(p): (p.rel, p.digest, records[p.rel].markup_key) for p in pages}


def missing_files(output_dir: Path, manifest: Mapping[str, str]) -> set[str]:
    """Outputs the manifest lists but the folder lacks (someone deleted them)."""
    root = str(output_dir)
    return {rel for rel in manifest if not os.path.isfile(os.path.join(root, rel))}


def digests(files: Mapping[str, FileState]) -> dict[str, str]:
    return {rel: digest for rel, (_, digest) in files.items()}


def _recorded_files(graph: DepGraph, node: str) -> tuple[str, ...]:
    record = graph.nodes.get(node)
    return tuple(rel for rel, _ in record.files) if record is not None else ()


__all__ = [
    "Changes",
    "Plan",
    "changes_since",
    "closures_if_current",
    "digests",
    "missing_files",
    "page_tokens",
    "plan_renders",
]
