"""The inputs of one incremental build: the source folders' files and their digests.

Input: the config, the paths a watcher reported (or None), whether that report is complete,
the last walk of the folders and the last build's state head. Output: `Inputs` (the
`SourceTree`, the stamp and digest of every template, static and data file, the pages to
re-read whatever their stamps say) and the walk, for the next build to reuse.

A file is digested again only when its stamp is not trusted (it changed, or is too recent
to judge, see stamps.stamp_trusted) or a watcher named it. With a complete report
(`trusted`) of files the last walk listed, the folders are not walked again.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import NamedTuple

from kbgen.config_types import Config
from kbgen.diagnostics import Diagnostic
from kbgen.discover import SourceFile, SourceTree, scan
from kbgen.incremental.stamps import stamp_of, stamp_trusted
from kbgen.incremental.state import FileState, StateHead
from kbgen.write_manifest import file_digest


class Scanned(NamedTuple):
    """One walk of the source folders, and where each file it found sits."""

    config_digest: str
    tree: SourceTree
    found: list[Diagnostic]
    scanned_ns: int
    rels: dict[Path, str]  #: path -> content rel of a page, "" for any other file

    @classmethod
    def of(cls, config: Config) -> Scanned:
        scanned_ns = time.time_ns()
        tree, found = scan(config)
        rels = {file.path: file.rel for file in tree.pages}
        for file in (*tree.data.values(), *tree.static, *tree.templates):
            rels.setdefault(file.path, "")  # known, but not a page
        return cls(config.digest, tree, found, scanned_ns, rels)


class Inputs(NamedTuple):
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


def scan_inputs(
    config: Config,
    today: dt.date,
    changed: set[Path] | None,
    trusted: bool,
    known: Scanned | None,
    head: StateHead | None,
) -> tuple[Inputs, Scanned]:
    """This build's inputs, and the walk they came from (`known` when it could be reused)."""
    forced = {p.absolute() for p in changed or ()}
    reusable = (
        trusted
        and changed is not None
        and known is not None
        and known.config_digest == config.digest
        and all(path in known.rels and os.path.isfile(path) for path in forced)
    )
    if not reusable or known is None:
        # Stamps taken in a build that reuses the walk are judged against that walk's
        # time (stamps.stamp_trusted), which is what the unscanned files' stamps are from.
        trusted = False
        known = Scanned.of(config)
    force_pages = frozenset(filter(None, map(known.rels.get, forced)))
    tree = known.tree

    def states(files: Iterable[SourceFile], field: str) -> dict[str, FileState]:
        old: Mapping[str, FileState] = getattr(head, field) if head is not None else {}
        return file_states(files, old, forced, head.scanned_ns if head is not None else None)

    inputs = Inputs(
        config=config,
        today=today,
        tree=tree,
        discovered=known.found,
        scanned_ns=known.scanned_ns,
        templates=states(tree.templates, "templates"),
        statics=states(tree.static, "statics"),
        data=states(tree.data.values(), "data"),
        force_pages=force_pages,
        trusted=trusted,
    )
    return inputs, known


def file_states(
    files: Iterable[SourceFile],
    old: Mapping[str, FileState],
    forced: set[Path],
    scanned_ns: int | None,
) -> dict[str, FileState]:
    """(stamp, digest) of each file: the last build's while its stamp is trusted and no
    watcher named it, else read again ((None, "") when it cannot be read: the stage that
    uses it reports that)."""
    fresh: dict[str, FileState] = {}
    for file in files:
        stamp = stamp_of(file.path)
        prior = old.get(file.rel)
        if (
            prior is not None
            and file.path not in forced
            and scanned_ns is not None
            and stamp_trusted(stamp, prior[0], scanned_ns)
        ):
            fresh[file.rel] = prior
            continue
        try:
            fresh[file.rel] = (stamp, file_digest(file.path))
        except OSError:
            fresh[file.rel] = (None, "")
    return fresh


__all__ = ["Inputs", "Scanned", "file_states", "scan_inputs"]
