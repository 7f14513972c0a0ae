"""Citations against the references: unknown keys, and which pages cite each reference.

Input: a page (or each page's cited keys), the references by key (`references.yaml`), the
timelines by page.
Output: each page's unknown-citation errors (`citation_problems`, at the citation's
file:line:col with "did you mean"), and reference key -> the pages citing it, in their body,
fields or timeline (`citing_pages`), with a warning for each reference nobody cites.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from kbgen.diagnostics import Diagnostic, did_you_mean, error, warning
from kbgen.model import Page, Reference

if TYPE_CHECKING:  # the timeline's module is loaded only by a build that has one
    from kbgen.timeline import Timeline


def citation_problems(
    page: Page, references: Mapping[str, Reference], references_path: str
) -> list[Diagnostic]:
    return [
        error(
            page.source,
            cite.line,
            cite.col,
            f"unknown citation key '@{cite.key}'",
            did_you_mean(cite.key, references)
            or f"add an entry '{cite.key}:' to {references_path}",
        )
        for cite in page.citations
        if cite.key not in references
    ]


def citing_pages(
    cited: Mapping[str, Iterable[str]],
    references: Mapping[str, Reference],
    diagnostics: list[Diagnostic],
    references_path: str,
    some_unloaded: bool = False,
    timelines: Mapping[str, Timeline] | None = None,
) -> dict[str, tuple[str, ...]]:
    """Reference key -> pages citing it (`cited`: page key -> the keys it cites, in its
    body or fields; and the timelines); warns about references nobody cites (unless a page
    could not be loaded: it may be the one citing them)."""
    citing: dict[str, list[str]] = defaultdict(list)
    for key, keys in cited.items():
        for ref_key in keys:
            if ref_key in references:
                citing[ref_key].append(key)
    for key, timeline in (timelines or {}).items():
        for event in timeline.events:
            for ref_key in event.cite:
                if ref_key in references:
                    citing[ref_key].append(key)
    for ref_key, reference in references.items():
        if ref_key not in citing and not some_unloaded:
            diagnostics.append(
                warning(
                    references_path,
                    reference.line,
                    1,
                    f"reference '{ref_key}' is never cited",
                    "cite it with [@" + ref_key + "] or remove the entry",
                )
            )
    return {k: tuple(sorted(set(v))) for k, v in sorted(citing.items())}
