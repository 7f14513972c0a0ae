"""Related pages: each article's explicit `related:` list, then the pages closest to it.

Input: pages by key, each page's outbound links and backlinks, pages by tag, and the slugs
of page files that could not be loaded.
Output: article key -> up to `RELATED_LIMIT` related article keys (explicit ones first, then
ranked by shared links and tags, with bounded fan-out), and an error for each `related:`
entry that names no article (or the article itself).
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from collections.abc import Mapping

from kbgen.diagnostics import Diagnostic, did_you_mean, error
from kbgen.model import Backlink, Page

RELATED_LIMIT = 5
FANOUT_CAP = 50  # candidates taken per shared tag/target when ranking related pages


def related_pages(
    pages: Mapping[str, Page],
    outbound: Mapping[str, set[str]],
    backlinks: Mapping[str, list[Backlink]],
    pages_by_tag: Mapping[str, tuple[str, ...]],
    unloaded: frozenset[str],
    diagnostics: list[Diagnostic],
) -> dict[str, tuple[str, ...]]:
    """Explicit `related:` first, then pages sharing links and tags (bounded fan-out).
    `unloaded`: slugs of page files that could not be loaded (reported there already)."""
    article_keys = [k for k, p in pages.items() if p.kind == "article"]
    sort_title = {k: pages[k].meta.title.lower() for k in article_keys}  # once, not per sort
    inbound = {k: [b.source_slug for b in v] for k, v in backlinks.items()}
    # Tags as bit masks: shared tags are then `(a & b).bit_count()`, several times faster
    # than intersecting sets, for the ~70 candidates of every page.
    tag_bits = {
        tag: 1 << n
        for n, tag in enumerate(sorted({t for p in pages.values() for t in p.meta.tags}))
    }
    tags_of = {k: sum(tag_bits[t] for t in set(p.meta.tags)) for k, p in pages.items()}
    related: dict[str, tuple[str, ...]] = {}
    for key in article_keys:
        page = pages[key]
        chosen = _explicit_related(key, pages, article_keys, unloaded, diagnostics)
        scores = _link_scores(key, outbound, inbound)
        excluded = {key, *chosen}
        need = RELATED_LIMIT - len(chosen)
        ranked = _ranked(
            scores,
            tags_of[key],
            set(page.meta.tags),
            need,
            excluded,
            tags_of,
            sort_title,
            pages_by_tag,
        )
        related[key] = tuple(chosen + _best(ranked, need, sort_title))
    return related


def _explicit_related(
    key: str,
    pages: Mapping[str, Page],
    article_keys: list[str],
    unloaded: frozenset[str],
    diagnostics: list[Diagnostic],
) -> list[str]:
    """The articles the page at `key` lists under `related:`, each once, in its order; an
    error for each entry that is no article (or the page itself)."""
    page = pages[key]
    chosen: list[str] = []
    for slug in page.meta.related:
        if slug in pages and pages[slug].kind == "article" and slug != key:
            if slug not in chosen:
                chosen.append(slug)
            continue
        if slug in unloaded and slug not in pages:
            continue
        line, col = page.meta.key_positions.get("related", (1, 1))
        if slug == key:
            message = f"an article cannot list itself ('{slug}') under 'related'"
            hint = "remove it from the related list"
        else:
            message = f"related article '{slug}' does not exist"
            others = [k for k in article_keys if k != key]
            hint = did_you_mean(slug, others) or "use an article slug"
        diagnostics.append(error(page.source, line, col, message, hint))
    return chosen


def _link_scores(
    key: str, outbound: Mapping[str, set[str]], inbound: Mapping[str, list[str]]
) -> Counter[str]:
    """Link score of each candidate: 3 per direct link either way, 1 per page that links to
    a page this one links to (bounded fan-out)."""
    scores: Counter[str] = Counter()
    for other in outbound.get(key, ()):
        scores[other] += 3
        scores.update(inbound.get(other, ())[:FANOUT_CAP])
    for other in inbound.get(key, ())[:FANOUT_CAP]:
        scores[other] += 3
    return scores


def _ranked(
    scores: Mapping[str, int],
    my_tags: int,  #: the page's tags as a bit mask
    my_tag_names: set[str],
    need: int,
    excluded: set[str],
    tags_of: Mapping[str, int],  #: page -> its tags as a bit mask
    sort_title: Mapping[str, str],
    pages_by_tag: Mapping[str, tuple[str, ...]],
) -> dict[str, int]:
    """Final scores of the candidates that can still make the list (articles, not
    `excluded`): link score plus one per shared tag; when links give few candidates,
    articles sharing tags fill in.

    Shared tags add at most `len(my_tag_names)`, so a candidate whose link score is lower
    than the `need`-th best by more than that cannot be chosen, and its tags are not compared
    (most of the ~70 candidates a page has at 10,000 pages).
    """
    if need <= 0:
        return {}
    my_tag_count = my_tags.bit_count()
    eligible = [(s, k) for k, s in scores.items() if k not in excluded and k in sort_title]
    floor = -1
    if len(eligible) >= need:
        floor = heapq.nlargest(need, (s for s, _ in eligible))[-1] - my_tag_count
    final = {k: s + (my_tags & tags_of[k]).bit_count() for s, k in eligible if s >= floor}
    if len(scores) < RELATED_LIMIT * 2:
        seen = set(scores)
        for tag in sorted(my_tag_names, key=lambda t: (len(pages_by_tag.get(t, ())), t)):
            for other in pages_by_tag.get(tag, ())[:FANOUT_CAP]:
                if other not in seen:
                    seen.add(other)
                    if other not in excluded and other in sort_title:
                        final[other] = (my_tags & tags_of[other]).bit_count()
    return final


def _best(scores: Mapping[str, int], limit: int, sort_title: Mapping[str, str]) -> list[str]:
    """The `limit` articles with the highest score, ties by title then slug.

    Scores are small sums, so candidates fall into few score groups; only the groups that
    reach the limit are sorted (sorting ~70 candidates per page dominated resolve on 10,000
    pages, to keep 5).
    """
    if limit <= 0:
        return []
    groups: dict[int, list[str]] = defaultdict(list)
    for candidate, score in scores.items():  # all eligible already (see _ranked)
        groups[score].append(candidate)
    best: list[str] = []
    for score in sorted(groups, reverse=True):
        best += sorted(groups[score], key=lambda k: (sort_title[k], k))
        if len(best) >= limit:
            break
    return best[:limit]
