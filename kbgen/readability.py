"""Reading grade (Flesch-Kincaid) of each article's `in_short` and body prose, for `check`.

Input: the resolved `SiteIndex` and `Config` (its `readability` thresholds).
Output: `ArticleReadability` figures per article (words, sentences, grades), and warnings
for an article without an `in_short`, or whose `in_short` or body reads above its threshold.

The body is measured on the HTML readers get (links substituted, as the article template
shows it), reduced to prose: code, tables, headings, citation and footnote numbers, scripts
and markup are left out; every paragraph, list item and quote is its own block, so a list
item without a full stop still ends a sentence.

Syllables are counted by a small English heuristic (vowel groups with the common silent and
split endings) rather than a library: the readability packages that count well need a
dictionary download at run time (textstat >= 0.7.5 fetches NLTK's CMU dictionary, which fails
offline), and a hyphenation dictionary (pyphen) undercounts endings it will not split. The
heuristic is exact on the test words in tests/test_readability.py and within a syllable
on most others, which moves a grade by a few tenths at most.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser

from kbgen.config_types import Config, ReadabilityOptions
from kbgen.diagnostics import Diagnostic, warning
from kbgen.model import Page
from kbgen.site_index import SiteIndex

# -- counting ----------------------------------------------------------------------------

_VOWEL_GROUPS = re.compile(r"[aeiouy]+")
#: vowel pairs read as two syllables ("me-di-a", "so-di-um", "u-su-al", "du-o")
_SPLIT_PAIRS = re.compile(r"(?<![ct])ia|iu|ua|uo|(?<![tscx])io")
_SENTENCE_END = re.compile(r"(?<=[.!?])([\"')\]\u201d\u2019]*)\s+")
#: words ending in a full stop that do not end a sentence
_ABBREVIATIONS = frozenset(
    {"e.g.", "i.e.", "al.", "vs.", "etc.", "dr.", "mr.", "mrs.", "ms.", "approx.", "no.",
     "fig.", "u.s.", "u.k.", "st.", "cf.", "ca."}
)


def count_syllables(word: str) -> int:
    """Syllables of one English word (a heuristic; at least 1 for any word)."""
    parts = [p for p in re.split(r"[-\u2010\u2011\u2013/]", word.lower()) if p]
    if len(parts) > 1:  # "long-term", "and/or": the parts' syllables
        return sum(count_syllables(part) for part in parts)
    letters = re.sub(r"[^a-z]", "", word.lower())
    if len(letters) <= 3:
        return 1
    count = len(_VOWEL_GROUPS.findall(letters))
    if letters.endswith("e") and not letters.endswith(("ee", "ie", "ye")):
        # a silent final e ("make"), except a consonant + "le" ("ta-ble")
        if not (letters.endswith("le") and letters[-3] not in "aeiouy"):
            count -= 1
    elif letters.endswith(("es", "ed")) and not letters.endswith(
        ("ted", "ded", "ses", "zes", "xes", "ces", "ges", "ches", "shes", "ies", "ees")
    ):
        count -= 1  # "makes", "used"; not "wanted", "doses", "changes"
    count += len(_SPLIT_PAIRS.findall(letters))
    return max(1, count)


def words_of(text: str) -> list[str]:
    """The words of a text: whitespace-separated tokens holding a letter or a digit."""
    return [token for token in text.split() if any(c.isalnum() for c in token)]


def split_sentences(text: str) -> list[str]:
    """Sentences of one block of prose: split after . ! ? and a space, not after "e.g."."""
    sentences: list[str] = []
    start = 0
    for found in _SENTENCE_END.finditer(text):
        end = found.start() + len(found[1])  # closing quotes and brackets stay with it
        before = text[start : found.start()].split()
        if before and before[-1].lower().lstrip("(\"'") in _ABBREVIATIONS:
            continue
        sentences.append(text[start:end])
        start = found.end()
    sentences.append(text[start:])
    return [s for s in sentences if words_of(s)]


@dataclass(frozen=True, slots=True)
class TextStats:
    words: int
    sentences: int
    syllables: int

    @property
    def grade(self) -> float | None:
        """Flesch-Kincaid grade level; None for text without words."""
        if not self.words:
            return None
        return (
            0.39 * self.words / self.sentences + 11.8 * self.syllables / self.words - 15.59
        )


def text_stats(blocks: Iterable[str]) -> TextStats:
    """Counts over blocks of prose; each block holds one sentence at least."""
    words = sentences = syllables = 0
    for block in blocks:
        for sentence in split_sentences(block):
            tokens = words_of(sentence)
            words += len(tokens)
            sentences += 1
            syllables += sum(count_syllables(token) for token in tokens)
    return TextStats(words, sentences, syllables)


# -- prose from HTML ---------------------------------------------------------------------

_SKIPPED = frozenset(
    {"pre", "code", "table", "h1", "h2", "h3", "h4", "h5", "h6", "sup", "script", "style",
     "kbd", "samp", "svg", "math", "nav"}
)
_BLOCKS = frozenset(
    {"p", "li", "dt", "dd", "blockquote", "div", "section", "br", "figcaption", "ul", "ol",
     "dl", "details", "summary", "tr", "hr", "aside", "header", "footer", "article"}
)
_VOID = frozenset({"br", "hr", "img", "wbr", "input", "meta", "link", "source"})


class _ProseParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[str] = []
        self._current: list[str] = []
        self._skipping = 0

    def _flush(self) -> None:
        text = " ".join("".join(self._current).split())
        if text:
            self.blocks.append(text)
        self._current = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCKS:
            self._flush()
        if tag in _SKIPPED and tag not in _VOID:
            self._skipping += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED and self._skipping:
            self._skipping -= 1
        if tag in _BLOCKS:
            self._flush()

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self._current.append(data)

    def close(self) -> None:
        super().close()
        self._flush()


def prose_blocks(html: str) -> list[str]:
    """The prose of an HTML fragment, one string per paragraph, list item or quote."""
    parser = _ProseParser()
    parser.feed(html)
    parser.close()
    return parser.blocks


# -- the site ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ArticleReadability:
    source: str  #: project-relative path, as in diagnostics
    slug: str
    words: int  #: body prose words (what readers read, without code, tables, headings)
    sentences: int
    body_grade: float | None
    in_short_words: int
    in_short_grade: float | None  #: None when the article has no in_short

    def to_json(self) -> dict[str, object]:
        return {
            "path": self.source,
            "slug": self.slug,
            "words": self.words,
            "sentences": self.sentences,
            "body_grade": _rounded(self.body_grade),
            "in_short_words": self.in_short_words,
            "in_short_grade": _rounded(self.in_short_grade),
        }


def _rounded(grade: float | None) -> float | None:
    return None if grade is None else round(grade, 1)


def measure_page(page: Page, body_html: str) -> ArticleReadability:
    body = text_stats(prose_blocks(body_html))
    short = text_stats([page.meta.in_short]) if page.meta.in_short else None
    return ArticleReadability(
        source=page.source,
        slug=page.slug,
        words=body.words,
        sentences=body.sentences,
        body_grade=body.grade,
        in_short_words=short.words if short else 0,
        in_short_grade=short.grade if short else None,
    )


def measure_site(index: SiteIndex, config: Config) -> list[ArticleReadability]:
    """Figures for every article, on its body HTML as the article page shows it."""
    from kbgen.routes import Router, SiteView  # the same link substitution as rendering

    view = SiteView(index, config, Router(config.directory_urls))
    figures = []
    for key, page in sorted(index.pages.items(), key=lambda item: item[1].source):
        if page.kind != "article":
            continue
        html = view.substitute(page.markup.html, key, view.file_of(key))
        figures.append(measure_page(page, html))
    return figures


def readability_warnings(
    index: SiteIndex, figures: Sequence[ArticleReadability], options: ReadabilityOptions
) -> list[Diagnostic]:
    """A warning per article without an in_short, and per text above its grade limit."""
    pages = {page.source: page for page in index.pages.values()}
    found: list[Diagnostic] = []
    for figure in figures:
        page = pages[figure.source]
        if figure.in_short_grade is None:
            found.append(
                warning(
                    figure.source,
                    1,
                    1,
                    "article has no in_short",
                    "add 'in_short:' with 2-4 plain sentences that a reader sees first",
                )
            )
        elif figure.in_short_grade > options.in_short_max_grade:
            line, col = page.meta.key_positions.get("in_short", (1, 1))
            found.append(
                warning(
                    figure.source,
                    line,
                    col,
                    f"in_short reads at grade {figure.in_short_grade:.1f} (Flesch-Kincaid); "
                    f"the limit is {options.in_short_max_grade:g}",
                    "use shorter sentences and everyday words",
                )
            )
        if figure.body_grade is not None and figure.body_grade > options.body_max_grade:
            found.append(
                warning(
                    figure.source,
                    page.body_line,
                    1,
                    f"the body reads at grade {figure.body_grade:.1f} (Flesch-Kincaid, "
                    f"{figure.words} words in {figure.sentences} sentences); the limit is "
                    f"{options.body_max_grade:g}",
                    "split long sentences and explain terms in plain words",
                )
            )
    return found
