"""`content/references.yaml` -> `Reference`s, validated; per-page numbering helpers.

Input: the YAML text of the references file (optional: a site may have none).
Output: `Reference` by key, plus diagnostics naming the references.yaml line: duplicate keys,
malformed DOI/PMID/PMCID, unknown fields (with a suggestion), missing title.
Citation keys used in pages are checked against these in resolve.py.
"""

from __future__ import annotations

import re

import yaml

from kbgen.diagnostics import Diagnostic, did_you_mean
from kbgen.model import Reference
from kbgen.yamlload import YamlReader

REFERENCE_TYPES = (
    "trial",
    "review",
    "meta-analysis",
    "guideline",
    "label",
    "regulatory",
    "preclinical",
    "observational",
    "book",
    "news",
    "other",
)
REFERENCE_KEYS = (
    "type",
    "authors",
    "title",
    "journal",
    "publisher",
    "year",
    "doi",
    "pmid",
    "pmcid",
    "url",
    "note",
)
DOI_RE = re.compile(r"^10\.\d{4,9}/[^\s\"<>]+$")
PMID_RE = re.compile(r"^[1-9]\d{0,8}$")
PMCID_RE = re.compile(r"^PMC\d{1,9}$")
KEY_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_:.#$%&+?<>~/-]*$")


def doi_url(doi: str) -> str:
    return f"https://doi.org/{doi}"


def pubmed_url(pmid: str) -> str:
    return f"https://pubmed.ncbi.nlm.nih.gov/{pmid}/"


def pmc_url(pmcid: str) -> str:
    return f"https://pmc.ncbi.nlm.nih.gov/articles/{pmcid}/"


_Fields = dict[str, tuple[yaml.Node, yaml.Node]]


def _text(reader: YamlReader, fields: _Fields, name: str, key: str) -> str | None:
    if name not in fields:
        return None
    value = reader.read_str(fields[name][1], f"'{name}' of reference '{key}'")
    return value.strip() if value is not None else None


def load_references(text: str | None, path: str) -> tuple[dict[str, Reference], list[Diagnostic]]:
    if text is None or not text.strip():
        return {}, []
    reader = YamlReader(path)
    root = reader.compose(text)
    if root is None:
        return {}, reader.diagnostics
    entries = reader.mapping(root, "references.yaml")
    if entries is None:
        return {}, reader.diagnostics
    references: dict[str, Reference] = {}
    for key, (key_node, value_node) in entries.items():
        if not KEY_RE.match(key):
            reader.fail(
                key_node,
                f"reference key '{key}' contains characters a citation cannot use",
                "use letters, digits, '-', '_', '.' and ':'",
            )
            continue
        fields = reader.mapping(value_node, f"reference '{key}'")
        if fields is None:
            continue
        for name, (name_node, _) in fields.items():
            if name not in REFERENCE_KEYS:
                reader.fail(
                    name_node,
                    f"unknown field '{name}' in reference '{key}'",
                    did_you_mean(name, REFERENCE_KEYS)
                    or f"allowed fields: {', '.join(REFERENCE_KEYS)}",
                )

        def text_field(name: str, fields: _Fields = fields, key: str = key) -> str | None:
            return _text(reader, fields, name, key)

        title = text_field("title")
        if title is None and "title" not in fields:
            reader.fail(key_node, f"reference '{key}' has no title", "add 'title: ...'")
        ref_type = text_field("type") or "other"
        if "type" in fields and ref_type not in REFERENCE_TYPES:
            reader.fail(
                fields["type"][1],
                f"reference type '{ref_type}' is not one of {', '.join(REFERENCE_TYPES)}",
                did_you_mean(ref_type, REFERENCE_TYPES) or "use 'other' when no type fits",
            )
        authors = (
            reader.read_str_list(fields["authors"][1], f"'authors' of reference '{key}'")
            if "authors" in fields
            else []
        )
        year = (
            reader.read_int(fields["year"][1], f"'year' of reference '{key}'", minimum=1000)
            if "year" in fields
            else None
        )
        doi = text_field("doi")
        if doi is not None and not DOI_RE.match(doi):
            reader.fail(
                fields["doi"][1],
                f"malformed DOI '{doi}' in reference '{key}'",
                "a DOI looks like 10.1176/appi.ajp.2013.13030392 (no 'doi:' or URL prefix)",
            )
        pmid = text_field("pmid")
        if pmid is not None and not PMID_RE.match(pmid):
            reader.fail(
                fields["pmid"][1],
                f"malformed PMID '{pmid}' in reference '{key}'",
                'a PMID is 1 to 9 digits, e.g. "23982301"',
            )
        pmcid = text_field("pmcid")
        if pmcid is not None and not PMCID_RE.match(pmcid):
            reader.fail(
                fields["pmcid"][1],
                f"malformed PMCID '{pmcid}' in reference '{key}'",
                "a PMCID looks like PMC3000408",
            )
        url = text_field("url")
        if url is not None and not url.startswith(("https://", "http://")):
            reader.fail(
                fields["url"][1],
                f"reference URL must start with https://, not '{url}'",
                "give the full address",
            )
        # A reference with a bad field is still registered (its errors fail the build anyway),
        # so citing it does not add a misleading "unknown citation key" error.
        references[key] = Reference(
            key=key,
            type=ref_type if ref_type in REFERENCE_TYPES else "other",
            authors=tuple(authors or ()),
            title=title or key,
            container=text_field("journal") or text_field("publisher") or "",
            year=year,
            doi=doi if doi is not None and DOI_RE.match(doi) else None,
            pmid=pmid if pmid is not None and PMID_RE.match(pmid) else None,
            pmcid=pmcid if pmcid is not None and PMCID_RE.match(pmcid) else None,
            url=url if url is not None and url.startswith(("https://", "http://")) else None,
            line=reader.pos(key_node)[0],
        )
    return references, reader.diagnostics
