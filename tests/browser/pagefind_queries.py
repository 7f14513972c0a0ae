"""Ask a served Pagefind bundle questions the way a reader's browser does, and compare answers.

Input: a Playwright page and the base URL of a served site (its `pagefind/` bundle).
Output: for each `Query`, an `Answer` — every result's URL (the result set) and the first ten
URLs in Pagefind's ranked order, as the real `pagefind.js` in Chromium returns them.

Used by tests/browser/test_search_answers.py (a small site, in the suite) and by
benchmarks/search_answers.py (the repository site and the 1,000-article corpus). Queries are
chosen from the reference site's own indexed text (`choose_queries`), seeded, so both sides
are asked the same 50 questions: single words, quoted phrases, a word with a filter, and
filters alone.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any

from playwright.sync_api import Page

#: Runs in the page: load pagefind.js from the site, then each query; results' data() gives
#: the URL (fragments are fetched once per page and cached by Pagefind).
_ASK = """
async ({base, queries}) => {
  const pagefind = await import(base + "/pagefind/pagefind.js");
  await pagefind.init();
  const answers = [];
  for (const q of queries) {
    const found = await pagefind.search(q.term, q.filters ? {filters: q.filters} : {});
    const data = await Promise.all(found.results.map(r => r.data()));
    answers.push({urls: data.map(d => d.url), count: found.results.length});
  }
  return answers;
}
"""

#: In the page: the URL, indexed text and filter values of up to `limit` indexed pages.
_SURVEY = """
async ({base, limit}) => {
  const pagefind = await import(base + "/pagefind/pagefind.js");
  await pagefind.init();
  const all = await pagefind.search(null, {});
  const data = await Promise.all(all.results.slice(0, limit).map(r => r.data()));
  return {pages: data.map(d => [d.url, d.content, d.filters])};
}
"""


@dataclass(frozen=True)
class Query:
    """One question: a search term (None: filters only) and filters ({name: [values]})."""

    label: str
    term: str | None
    filters: dict[str, list[str]] = field(default_factory=dict)

    def as_js(self) -> dict[str, Any]:
        return {"term": self.term, "filters": self.filters or None}


@dataclass(frozen=True)
class Answer:
    """What a reader sees: the result set and the first ten results in ranked order."""

    urls: frozenset[str]
    top10: tuple[str, ...]


def ask(page: Page, base_url: str, queries: list[Query]) -> list[Answer]:
    """Run every query in the browser against the bundle served at base_url."""
    page.goto(base_url + "/", wait_until="load")
    raw = page.evaluate(_ASK, {"base": base_url, "queries": [q.as_js() for q in queries]})
    return [Answer(frozenset(item["urls"]), tuple(item["urls"][:10])) for item in raw]


_WORD = re.compile(r"[a-z]{4,}")  #: single-word queries: no short glue words
_TOKEN = re.compile(r"[a-z]+")  #: phrases: consecutive words as the page has them


def choose_queries(page: Page, base_url: str, *, seed: int = 17, count: int = 50,
                   must_include: tuple[str, ...] = ()) -> list[Query]:
    """`count` distinct queries from the site's own indexed text, after `must_include`
    (e.g. a word an edit added): 40% single words (half the most frequent, half drawn at
    random), 20% phrases of two or three consecutive words of a page, 20% a word of a page
    with one of that page's filter values, the rest one or two of a page's filter values
    alone. Each phrase and filtered query is taken from a real page, so it has answers."""
    page.goto(base_url + "/", wait_until="load")
    survey = page.evaluate(_SURVEY, {"base": base_url, "limit": 400})
    rng = random.Random(seed)
    pages = sorted((url, text.lower(), filters) for url, text, filters in survey["pages"])
    frequency: dict[str, int] = {}
    for _, text, _ in pages:
        for word in set(_WORD.findall(text)):
            frequency[word] = frequency.get(word, 0) + 1
    by_count = sorted(frequency, key=lambda w: (-frequency[w], w))
    words_n, phrases_n, filtered_n = count * 2 // 5, count // 5, count // 5
    frequent = by_count[: words_n // 2]
    rest = by_count[len(frequent):]
    chosen: dict[str, Query] = {f"word {w}": Query(f"word {w}", w) for w in must_include}
    for word in [*frequent, *rng.sample(rest, min(len(rest), words_n - len(frequent)))]:
        chosen.setdefault(f"word {word}", Query(f"word {word}", word))
    with_filters = [p for p in pages if p[2]]
    makers = [(phrases_n, pages, _phrase), (filtered_n, with_filters, _word_and_filter),
              (count - words_n - phrases_n - filtered_n, with_filters, _filters_alone)]
    for wanted, candidates, make in makers:
        target = len(chosen) + wanted
        for _ in range(wanted * 20):  # a few draws may repeat a query or find no words
            if len(chosen) >= target or not candidates:
                break
            query = make(rng, rng.choice(candidates))
            if query is not None:
                chosen.setdefault(query.label, query)
    return list(chosen.values())


def _phrase(rng: random.Random, page: tuple[str, str, dict[str, list[str]]]) -> Query | None:
    tokens = _TOKEN.findall(page[1])
    if len(tokens) < 3:
        return None
    start = rng.randrange(len(tokens) - 2)
    phrase = " ".join(tokens[start : start + rng.choice((2, 3))])
    return Query(f"phrase {phrase}", f'"{phrase}"')


def _word_and_filter(rng: random.Random,
                     page: tuple[str, str, dict[str, list[str]]]) -> Query | None:
    words = sorted(set(_WORD.findall(page[1])))
    if not words:
        return None
    word, name = rng.choice(words), rng.choice(sorted(page[2]))
    value = rng.choice(page[2][name])
    return Query(f"{word} + {name}={value}", word, {name: [value]})


def _filters_alone(rng: random.Random,
                   page: tuple[str, str, dict[str, list[str]]]) -> Query | None:
    names = rng.sample(sorted(page[2]), min(len(page[2]), rng.choice((1, 2))))
    picked = {name: [rng.choice(page[2][name])] for name in names}
    return Query("filters " + " & ".join(f"{n}={v[0]}" for n, v in picked.items()), None, picked)


def differences(queries: list[Query], expected: list[Answer],
                answers: list[Answer]) -> list[str]:
    """One line per query whose result set or top-10 order differs."""
    lines = []
    for query, want, got in zip(queries, expected, answers, strict=True):
        if want.urls != got.urls:
            lines.append(f"{query.label}: missing {sorted(want.urls - got.urls)[:5]}, "
                         f"extra {sorted(got.urls - want.urls)[:5]}")
        elif want.top10 != got.top10:
            lines.append(f"{query.label}: top 10 {got.top10} != {want.top10}")
    return lines
