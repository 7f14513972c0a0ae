"""The rebuild policy: what a change of each kind causes. One table, read by the planner.

Input: the kinds of change a build found (`Change`: detected by kbgen/incremental/plan.py
from file stamps and digests, and by kbgen/incremental/resolving.py for what an edited page
shows to other pages). Output: the work they call for (`Effect`), the union over all of them
(`effects_of`). The Builder asks this table, not a chain of ifs, whether to build cold,
reload every page, resolve the whole site, copy static files, index for search or restage.

Which *pages* an effect reaches is not in the table: "render dependants" renders exactly
the nodes whose recorded reads changed (kbgen/incremental/deps.py), "reload pages" re-reads
the files whose stamp or digest changed. docs/incremental-builds.md shows this table;
tests/test_policy.py checks that the page and the code say the same thing.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from types import MappingProxyType


class Change(enum.Enum):
    """A kind of change since the last successful build (the value: how the docs name it)."""

    NO_STATE = "no usable state of a last build (the first build; the cache deleted or damaged)"
    GENERATOR = "kbgen itself (its version or code)"
    CONFIG = "`config.yaml` (or `--drafts`)"
    OUTPUT_REPLACED = "the output folder is not the one the last build wrote"
    DATE = "the date (review-overdue warnings)"
    PAGE_BODY = "an article's body (same front matter, headings, link targets and citations)"
    PAGE_SEEN = "what other pages show of a page: title, tags, summary, alias, typed field"
    PAGE_TARGET = "what links to a page resolve against: its headings, anchors or draft flag"
    PAGE_LINKS = "the pages a page links to, or the reference keys it cites"
    PAGE_ADDED = "a new page file (or a renamed one)"
    PAGE_DELETED = "a deleted page file (or one that no longer loads)"
    REFERENCES = "`references.yaml`"
    GLOSSARY = "`glossary.yaml`"
    TIMELINE = "`timeline.yaml` (the dated events one article shows)"
    TEMPLATE = "a template or partial"
    STATIC = "a static file"
    OUTPUT_MISSING = "files deleted from the output folder"
    SEARCH_TOGGLED = "search switched on or off"


class Effect(enum.Flag):
    """Work a change calls for.

    The Builder decides by reading FULL_REBUILD, RELOAD_ALL, COPY_STATIC, REINDEX_SEARCH and
    RESTAGE here, and the incremental resolve RESOLVE_CHANGED / RELINK / RESOLVE_ALL.
    RELOAD_PAGES and RENDER_DEPENDANTS are what every warm build does anyway, reaching
    exactly the files whose stamp or digest changed and the nodes whose recorded reads
    changed; they are in the table so that it tells the whole story.
    """

    NONE = 0
    #: render every node into a fresh staging folder and swap it in (builder: a cold build)
    FULL_REBUILD = enum.auto()
    #: re-read the page files whose stamp or digest changed (loading.load_pages)
    RELOAD_PAGES = enum.auto()
    #: load every page again, reusing no record of the last build: its conversions were
    #: made with another glossary, its warnings for another day (builder: the load)
    RELOAD_ALL = enum.auto()
    #: look up only the edited pages' links again, in the saved knowledge graph (resolving)
    RESOLVE_CHANGED = enum.auto()
    #: look up the links of the edited pages (and of pages naming a changed title or alias)
    #: again, keep the others', and make the site-wide tables anew from them (resolving)
    RELINK = enum.auto()
    #: resolve the whole site again (resolving)
    RESOLVE_ALL = enum.auto()
    #: render the nodes whose recorded reads or template closure changed (plan.plan_renders)
    RENDER_DEPENDANTS = enum.auto()
    #: copy the static files whose digest changed or whose copy is gone (writing.Writer.warm)
    COPY_STATIC = enum.auto()
    #: run Pagefind again if search is on and an HTML page's bytes changed (writing)
    REINDEX_SEARCH = enum.auto()
    #: assemble the new site in a staging folder and swap it in, even under `serve`, as
    #: the search index is made or dropped (writing.Writer.warm)
    RESTAGE = enum.auto()


#: How docs/incremental-builds.md names each effect.
EFFECT_WORDS: Mapping[Effect, str] = MappingProxyType({
    Effect.FULL_REBUILD: "full rebuild",
    Effect.RELOAD_PAGES: "reload changed pages",
    Effect.RELOAD_ALL: "reload every page",
    Effect.RESOLVE_CHANGED: "re-resolve the edited pages' links",
    Effect.RELINK: "re-resolve the links that can have changed, rebuild the site's tables",
    Effect.RESOLVE_ALL: "re-resolve the site",
    Effect.RENDER_DEPENDANTS: "re-render dependants",
    Effect.COPY_STATIC: "copy static files",
    Effect.REINDEX_SEARCH: "re-index search",
    Effect.RESTAGE: "restage the site",
})

_PAGE_REBUILT = Effect.RENDER_DEPENDANTS | Effect.REINDEX_SEARCH
_PAGE_EDIT = Effect.RELOAD_PAGES | _PAGE_REBUILT

#: The policy. Read top to bottom: a change of the kind on the left causes the work on the right.
POLICY: Mapping[Change, Effect] = MappingProxyType({
    Change.NO_STATE: Effect.FULL_REBUILD,
    Change.GENERATOR: Effect.FULL_REBUILD,
    Change.CONFIG: Effect.FULL_REBUILD,
    Change.OUTPUT_REPLACED: Effect.FULL_REBUILD,
    Change.DATE: Effect.RELOAD_ALL | Effect.RESOLVE_CHANGED | _PAGE_REBUILT,
    Change.PAGE_BODY: Effect.RESOLVE_CHANGED | _PAGE_EDIT,
    Change.PAGE_SEEN: Effect.RELINK | _PAGE_EDIT,
    Change.PAGE_TARGET: Effect.RESOLVE_ALL | _PAGE_EDIT,
    Change.PAGE_LINKS: Effect.RELINK | _PAGE_EDIT,
    Change.PAGE_ADDED: Effect.RESOLVE_ALL | _PAGE_EDIT,
    Change.PAGE_DELETED: Effect.RESOLVE_ALL | _PAGE_EDIT,
    Change.REFERENCES: Effect.RESOLVE_ALL | Effect.RENDER_DEPENDANTS | Effect.REINDEX_SEARCH,
    Change.TIMELINE: Effect.RESOLVE_ALL | Effect.RENDER_DEPENDANTS | Effect.REINDEX_SEARCH,
    Change.GLOSSARY: Effect.RELOAD_ALL | Effect.RESOLVE_ALL | _PAGE_REBUILT,
    Change.TEMPLATE: Effect.RENDER_DEPENDANTS | Effect.REINDEX_SEARCH,
    Change.STATIC: Effect.COPY_STATIC,
    Change.OUTPUT_MISSING: Effect.RENDER_DEPENDANTS | Effect.COPY_STATIC | Effect.REINDEX_SEARCH,
    Change.SEARCH_TOGGLED: Effect.RESTAGE | Effect.REINDEX_SEARCH,
})


def effects_of(changes: Iterable[Change]) -> Effect:
    """Everything the changes call for together."""
    combined = Effect.NONE
    for change in changes:
        combined |= POLICY[change]
    return combined


def policy_table() -> str:
    """The policy as the Markdown table docs/incremental-builds.md shows (a test compares)."""
    rows = ["| change | what it causes |", "|---|---|"]
    for change, effect in POLICY.items():
        words = [text for flag, text in EFFECT_WORDS.items() if flag in effect]
        rows.append(f"| {change.value} | {', '.join(words)} |")
    return "\n".join(rows) + "\n"


__all__ = ["EFFECT_WORDS", "POLICY", "Change", "Effect", "effects_of", "policy_table"]
