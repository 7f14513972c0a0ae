"""The build state: what the last successful build of one variant knew, kept between builds.

Input: a finished build's files, records, dependency graph, manifest and resolution.
Output: a `BuildState` in memory, saved in the cache folder (`state/<variant>`) so a later
process starts warm too, and read back as a small head (enough for "nothing changed") and a
body unpickled only when something did. A state from another kbgen, config or `--drafts`
is not used: `previous_state` names that change for the rebuild policy.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kbgen.config_types import Config
from kbgen.diagnostics import Diagnostic, error, no_file_error
from kbgen.incremental.cache import CacheDir, load_state, save_state
from kbgen.incremental.policy import Change
from kbgen.incremental.stamps import Stamp

if TYPE_CHECKING:  # (the no-change build reads only the head: it imports neither)
    from kbgen.incremental.deps import DepGraph
    from kbgen.incremental.loading import SourceRecord
    from kbgen.incremental.resolving import TrackedResolution


STATE_FORMAT = 4

FileState = tuple[Stamp | None, str]  #: (stamp, sha256) of a template, static or data file
PageToken = tuple[str, str, str | None]  #: (rel, digest, markup key): equal means an equal Page


@dataclass
class StateHead:
    """The part of the last build's state that the "nothing changed" check needs: small."""

    format: int
    generator: str
    config_digest: str
    drafts: bool
    today: dt.date
    scanned_ns: int  #: when that build started stat-ing files (see stamps.stamp_trusted)
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
    page_tokens: dict[str, PageToken]  #: page key -> what identifies its content
    graph: DepGraph
    closures: dict[str, frozenset[str] | None]  #: template -> templates it includes
    #: the knowledge graph of that build (in memory with its pages, saved without them),
    #: for an incremental resolve
    resolution: TrackedResolution | None = None


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


def variant(config: Config, drafts: bool) -> str:
    """Which state file a build uses: one per project, output folder and `--drafts`."""
    key = f"{config.path}\x00{config.output_dir}\x00drafts={drafts}"
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def previous_state(
    kept: BuildState | None,
    config: Config,
    cache: CacheDir | None,
    generator: str,
    drafts: bool,
) -> tuple[BuildState | None, Change | None]:
    """The last successful build of this variant (`kept` in memory, else from the cache
    folder), or None and why it cannot be used (None: there is none)."""
    state = kept
    if state is None and cache is not None:
        found = load_state(cache, variant(config, drafts), StateHead, StateBody)
        if found is not None:
            state = BuildState(*found)
    if state is None:
        return None, Change.NO_STATE
    head = state.head
    if getattr(head, "format", None) != STATE_FORMAT or head.generator != generator:
        return None, Change.GENERATOR
    if head.config_digest != config.digest or head.drafts != drafts:
        return None, Change.CONFIG
    return state, None


def save(state: BuildState, cache: CacheDir, variant_key: str) -> None:
    """Write `state` to the cache folder, its resolution without the pages (their HTML is
    in the markup cache already)."""
    from kbgen.incremental.resolving import portable

    body = state.body
    if body is None:
        return
    if body.resolution is not None:
        body = dataclasses.replace(body, resolution=portable(body.resolution))
    save_state(cache, variant_key, state.head, body)


def cache_unusable(config: Config, cache: CacheDir) -> Diagnostic | None:
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


__all__ = [
    "STATE_FORMAT",
    "BuildState",
    "FileState",
    "PageToken",
    "StateBody",
    "StateHead",
    "cache_unusable",
    "previous_state",
    "save",
    "variant",
]
