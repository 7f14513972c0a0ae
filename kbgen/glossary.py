"""`content/glossary.yaml` -> `GlossaryTerm`s, validated.

Input: the YAML text (a list of {term, definition, aliases, article}); the file is optional.
Output: terms in file order, plus diagnostics: duplicate terms or aliases (case-insensitive),
missing definitions, unknown fields. Whether `article` names a real page is checked in
resolve.py, once all pages are known.
"""

from __future__ import annotations

import re
import unicodedata

from kbgen.diagnostics import Diagnostic, did_you_mean
from kbgen.model import GlossaryTerm
from kbgen.yamlload import YamlReader

GLOSSARY_KEYS = ("term", "definition", "aliases", "article")


def term_id(term: str) -> str:
    """Stable anchor for a term: `NMDA receptor` -> `term-nmda-receptor`."""
    ascii_text = unicodedata.normalize("NFKD", term).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return f"term-{slug or 'x'}"


def load_glossary(text: str | None, path: str) -> tuple[list[GlossaryTerm], list[Diagnostic]]:
    if text is None or not text.strip():
        return [], []
    reader = YamlReader(path)
    root = reader.compose(text)
    if root is None:
        return [], reader.diagnostics
    nodes = reader.sequence(root, "glossary.yaml")
    if nodes is None:
        return [], reader.diagnostics
    terms: list[GlossaryTerm] = []
    first_use: dict[str, tuple[str, int]] = {}  # lowercased form -> (term, line)
    ids: set[str] = set()
    for node in nodes:
        fields = reader.mapping(node, "a glossary entry")
        if fields is None:
            continue
        for name, (name_node, _) in fields.items():
            if name not in GLOSSARY_KEYS:
                reader.fail(
                    name_node,
                    f"unknown field '{name}' in glossary entry",
                    did_you_mean(name, GLOSSARY_KEYS)
                    or f"allowed fields: {', '.join(GLOSSARY_KEYS)}",
                )
        if "term" not in fields or "definition" not in fields:
            missing = "term" if "term" not in fields else "definition"
            reader.fail(node, f"glossary entry has no '{missing}'", f"add '{missing}: ...'")
            continue
        term = reader.read_str(fields["term"][1], "'term'")
        definition = reader.read_str(fields["definition"][1], "'definition'")
        aliases = (
            reader.read_str_list(fields["aliases"][1], "'aliases'") if "aliases" in fields else []
        )
        article = (
            reader.read_str(fields["article"][1], "'article'") if "article" in fields else None
        )
        if term is None or definition is None or aliases is None:
            continue
        line = reader.pos(fields["term"][1])[0]
        duplicate = False
        for form in (term, *aliases):
            lowered = " ".join(form.lower().split())
            if lowered in first_use:
                other, other_line = first_use[lowered]
                reader.fail(
                    fields["term"][1] if form == term else fields["aliases"][1],
                    f"duplicate glossary term '{form}' (already used by '{other}' on "
                    f"line {other_line})",
                    "merge the two entries or remove the alias",
                )
                duplicate = True
            else:
                first_use[lowered] = (term, line)
        identifier = term_id(term)
        if duplicate or identifier in ids:
            continue
        ids.add(identifier)
        terms.append(
            GlossaryTerm(
                identifier,
                term.strip(),
                " ".join(definition.split()),
                tuple(a.strip() for a in aliases),
                article.strip() if article else None,
                line,
            )
        )
    return terms, reader.diagnostics
