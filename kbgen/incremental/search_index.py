"""Incremental search indexing: Pagefind over the changed pages only, the bundle written here.

Input: a folder holding the complete rendered site (the staging folder of a build, or serve's
snapshot), and the build cache (`CacheDir`, untrusted: every read is authenticated).
Output: `<site>/pagefind/`, byte for byte the bundle that `kbgen.search.index_site` (one full
Pagefind run, then `canonicalize_bundle`) writes for the same folder; per-page search records
and compressed index chunks in `<cache>/v1/search/`.

How. Pagefind stays the tokenizer, stemmer and producer of every page's ranking data. A page
whose HTML (by SHA-256) has a valid record from an earlier build is not given to Pagefind
again; the other pages are hard-linked, under their own relative paths, into a scratch folder
that Pagefind indexes (~0.1 s for a page). That small bundle is split into per-page records
(the page's word postings with positions and weights, its fragment file, filter values, word
count and meta keys), and the whole bundle is then written from all pages' records,
replicating what Pagefind 1.5.2 does over a whole site:

* page numbers: the order Pagefind's directory walk finds the indexed pages, which is the
  depth-first, readdir-order walk of the site folder (`site_pages`);
* the index: every word's postings in page order, page numbers as deltas, cut into chunks
  when the running sum of `len(locs) + len(meta_locs) + 1` over a chunk's postings reaches
  20,000; chunk bounds are shortest distinguishing prefixes; names are the first 7 hex digits
  of the (unpadded) SHA-1 of the chunk's CBOR;
* diacritic variants of a word: their own posting lists, in order of first appearance;
* meta positions: markers -(k+1) index the sorted list of all pages' meta keys, so they are
  renumbered when that list changes;
* fragment names: SHA-1 of the fragment's JSON, 7 digits, one more for the later page of a
  collision (`search_bundle.FragmentNamer`);
* filters, meta and pagefind-entry.json: as `canonicalize_bundle` writes them.

Four paths, cheapest first: "edit" (search_edit.py: the sealed state of the last bundle is
updated with the changed pages' words, unchanged files are linked from the last bundle);
"incremental" (every page's record loaded, the whole bundle written); "batches"
(search_batches.py: the first index, or one where most pages are new, Pagefind over batches of
pages, so its memory is bounded); "full" (one Pagefind run, for what the others do not model).

The version fence: the writer runs only for the Pagefind version it was verified against
(`VERIFIED_VERSION`) and for bundles of one language without sort keys; anything else, or any
page record that fails to verify, falls back to Pagefind over the pages concerned or, for the
cases the writer does not model, to one full Pagefind run. Batches and a full run derive every
page's record (and the state) for the next build.

Records are not pickles: each is a sealed envelope (HMAC under the cache key, bound to the
page's path and the SHA-256 of its HTML, `sealing.seal_bytes`) around JSON and raw CBOR bytes
that are only ever sliced and copied into the index, never executed. A record that is
missing, forged, truncated, too large or for other HTML means "give that page to Pagefind".
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kbgen import search
from kbgen.incremental.cache import CacheDir
from kbgen.incremental.search_batches import index_in_batches
from kbgen.incremental.search_bundle import bundle_state, remapped, write_bundle
from kbgen.incremental.search_edit import apply_edit, write_edited
from kbgen.incremental.search_records import (
    PageRecord,
    RecordStore,
    language_of,
    records_from_bundle,
)
from kbgen.incremental.search_state import IndexState, load_state, save_state
from kbgen.search import SearchIndexError
from kbgen.write_manifest import file_digest

FULL_RUN_SHARE = 0.5  #: more than this share of pages without a record: one full run
SENTINEL_NAME = "kbgen-search-probe.html"  #: the scratch run's always-indexed page
_IGNORED = frozenset({"/" + SENTINEL_NAME})  #: left out of a scratch run's records


@dataclass(frozen=True, slots=True)
class IndexRun:
    """What one call did: for tests and the benchmark's verbose output."""

    #: "full" (one Pagefind run over the site), "batches" (Pagefind over batches of pages,
    #: the bundle written from their records), "edit" (the last bundle's state updated with
    #: the changed pages' words) or "incremental" (the bundle written from every record)
    mode: str
    pages: int  #: HTML pages in the site
    reindexed: int  #: pages given to Pagefind
    reason: str = ""  #: why a full run was chosen


# -- entry point ------------------------------------------------------------------------


def index_site(
    site_dir: Path,
    cache: CacheDir | None,
    *,
    incremental: bool = True,
    previous: Path | None = None,
    digests: Mapping[str, str] | None = None,
) -> IndexRun:
    """Index site_dir into site_dir/pagefind/, re-running Pagefind only where HTML changed.

    `previous` is the last bundle written (default: site_dir/pagefind), whose unchanged files
    an edit links; `digests` are SHA-256s of HTML files under site_dir that the caller wrote
    itself this build (the others are hashed here).
    """
    binary = search.pagefind_binary()
    if binary is None or cache is None or not incremental:
        search.index_site(site_dir)
        return IndexRun("full", 0, 0, "no cache" if cache is None else "not incremental")
    site_dir = site_dir.absolute()
    with search.INDEX_LOCK:
        try:
            if previous is None and (site_dir / search.BUNDLE_DIR).is_dir():
                previous = site_dir / search.BUNDLE_DIR
            return _index(binary, site_dir, cache, previous, digests or {})
        except OSError as exc:
            full = search.disk_full(site_dir)
            raise SearchIndexError(
                f"could not write the search index into {site_dir}: {full or exc}; index again"
            ) from None


def _index(
    binary: Path,
    site_dir: Path,
    cache: CacheDir,
    previous: Path | None,
    given: Mapping[str, str],
) -> IndexRun:
    rels = site_pages(site_dir)
    digests = {rel: given.get(rel) or file_digest(site_dir / rel) for rel in rels}
    store = RecordStore(cache)
    state = load_state(cache)
    if state is not None and _full_run_reason(rels, []) is None:
        changed = _edit(binary, site_dir, rels, digests, state, store, previous)
        if changed is not None:
            return IndexRun("edit", len(rels), changed)
    known = {rel: store.load(rel, digest) for rel, digest in digests.items()}
    missing = [rel for rel in rels if known[rel] is None]
    reason = _full_run_reason(rels, missing)
    if reason is None:
        written = _incremental(binary, site_dir, rels, digests, known, missing, store)
        if written is not None:
            return IndexRun("incremental", len(rels), len(missing))
        reason = "the writer does not model this bundle"
    if not reason.startswith("a hidden") and _batched(binary, site_dir, rels, digests, store):
        return IndexRun("batches", len(rels), len(rels), reason)
    _full(binary, site_dir, rels, digests, store)
    return IndexRun("full", len(rels), len(rels), reason)


def _full_run_reason(rels: list[str], missing: list[str]) -> str | None:
    if any(part.startswith(".") for rel in rels for part in rel.split("/")):
        return "a hidden file or folder holds HTML"
    if len(missing) > FULL_RUN_SHARE * max(len(rels), 1):
        return f"{len(missing)} of {len(rels)} pages have no record"
    return None


def _full(
    binary: Path, site_dir: Path, rels: list[str], digests: dict[str, str], store: RecordStore
) -> None:
    """One Pagefind run over the whole site (exactly search.index_site), then records."""
    fresh = site_dir / f".{search.BUNDLE_DIR}.new-{os.getpid()}"
    shutil.rmtree(fresh, ignore_errors=True)
    try:
        search.run_pagefind(binary, site_dir, fresh)
        canonical = search.canonicalize_bundle(fresh)
        records = records_from_bundle(fresh, rels, digests) if canonical else None
        state = None
        if records is not None:
            store.save(records.values(), keep=rels)
            state, chunks = bundle_state(fresh, [records[rel] for rel in rels])
            store.save_chunks(chunks)
        save_state(store.cache, state)
        search.replace_bundle(fresh, site_dir / search.BUNDLE_DIR)
    finally:
        shutil.rmtree(fresh, ignore_errors=True)


def _batched(
    binary: Path, site_dir: Path, rels: list[str], digests: dict[str, str], store: RecordStore
) -> bool:
    """Every page indexed in batches (search_batches.py); False if that is not modelled."""
    scratch = Path(tempfile.mkdtemp(prefix=".kbgen-search-", dir=site_dir.parent))
    try:

        def run(batch: list[str], number: int) -> Path:
            folder = scratch / f"batch-{number}"
            folder.mkdir()
            return _scratch_run(binary, site_dir, folder, batch, "en")

        bundle = scratch / "bundle"
        state = index_in_batches(run, rels, digests, bundle, store, _IGNORED)
        if state is None:
            return False
        save_state(store.cache, state)
        search.replace_bundle(bundle, site_dir / search.BUNDLE_DIR)
        return True
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _incremental(
    binary: Path,
    site_dir: Path,
    rels: list[str],
    digests: dict[str, str],
    known: dict[str, PageRecord | None],
    missing: list[str],
    store: RecordStore,
) -> bool | None:
    """Pagefind over `missing` only, the bundle from every page's record; None to fall back."""
    scratch = Path(tempfile.mkdtemp(prefix=".kbgen-search-", dir=site_dir.parent))
    try:
        language = language_of(known.values())
        bundle = _scratch_run(binary, site_dir, scratch, missing, language)
        fresh = records_from_bundle(
            bundle, missing, digests, ignore=_IGNORED, language=language
        )
        if fresh is None:
            return None
        records = {rel: known[rel] or fresh[rel] for rel in rels}
        ordered = [records[rel] for rel in rels]  # rels are in walk order
        if not any(record is not None and record.indexed for record in ordered):
            return None  # no data-pagefind-body left: Pagefind would index whole bodies
        written = write_bundle(ordered, bundle, store)
        if written is None:
            return None
        renumbered, state = written
        store.save([renumbered.get(rel, fresh[rel]) for rel in missing], keep=rels)
        store.save([r for rel, r in renumbered.items() if rel not in fresh], keep=None)
        save_state(store.cache, state)
        search.replace_bundle(bundle, site_dir / search.BUNDLE_DIR)
        return True
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _edit(
    binary: Path,
    site_dir: Path,
    rels: list[str],
    digests: dict[str, str],
    state: IndexState,
    store: RecordStore,
    previous: Path | None,
) -> int | None:
    """Pagefind over the pages whose HTML differs from the state's, the state updated with
    their words; the number of pages indexed, or None to fall back to the records."""
    if previous is None or [page.rel for page in state.pages] != rels:
        return None
    was = {page.rel: page.digest for page in state.pages}
    changed = [rel for rel in rels if digests[rel] != was[rel]]
    if len(changed) > FULL_RUN_SHARE * len(rels):
        return None
    old = {rel: store.load(rel, was[rel]) for rel in changed}
    if any(record is None for record in old.values()):
        return None  # before running Pagefind: the records path would run it again
    scratch = Path(tempfile.mkdtemp(prefix=".kbgen-search-", dir=site_dir.parent))
    try:
        bundle = _scratch_run(binary, site_dir, scratch, changed, state.language)
        fresh = records_from_bundle(
            bundle, changed, digests, ignore=_IGNORED, language=state.language
        )
        if fresh is None:
            return None
        edits = {rel: (record, fresh[rel]) for rel, record in old.items() if record is not None}
        updated = apply_edit(state, edits)
        written = updated and write_edited(bundle, updated, state, fresh, previous, store)
        if not written:
            return None
        store.save([remapped(fresh[rel], state.meta_keys) for rel in changed], keep=None)
        save_state(store.cache, written)
        search.replace_bundle(bundle, site_dir / search.BUNDLE_DIR)
        return len(changed)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _scratch_run(
    binary: Path, site_dir: Path, scratch: Path, rels: list[str], language: str
) -> Path:
    """Pagefind over `rels` (and the probe) in `scratch`; its bundle folder."""
    _stage_pages(site_dir, scratch / "pages", rels, language)
    bundle = scratch / "bundle"
    search.run_pagefind(binary, scratch / "pages", bundle)
    return bundle


def _stage_pages(site_dir: Path, pages: Path, rels: list[str], language: str) -> None:
    """The pages Pagefind must read, under their own paths, plus an always-indexed probe.

    The probe carries data-pagefind-body, so Pagefind skips pages without one exactly as it
    does over the whole site (which always has such pages: checked by the caller), and a run
    over zero changed pages still writes a bundle (the static files come from it).
    """
    pages.mkdir()
    for rel in rels:
        target = pages / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(site_dir / rel, target)
        except OSError:
            shutil.copyfile(site_dir / rel, target)
    probe = (
        f'<!DOCTYPE html><html lang="{language}"><head><title>probe</title></head><body>'
        "<main data-pagefind-body><p>kbgenprobe</p></main></body></html>"
    )
    (pages / SENTINEL_NAME).write_text(probe, "utf-8")


# -- the site's pages, in Pagefind's order -------------------------------------------------


def site_pages(site_dir: Path) -> list[str]:
    """Every *.html file under site_dir in the order Pagefind's walk finds them.

    Pagefind walks the folder depth first, each directory's entries in the order the file
    system lists them (no sorting), and numbers the indexed pages in that order; os.scandir
    lists them in the same order.
    """
    found: list[str] = []
    _walk(site_dir, "", found)
    return found


def _walk(folder: Path, prefix: str, found: list[str]) -> None:
    with os.scandir(folder) as entries:
        listed = list(entries)
    for entry in listed:
        if entry.is_dir(follow_symlinks=False):
            if not (prefix == "" and entry.name == search.BUNDLE_DIR):
                _walk(Path(entry.path), f"{prefix}{entry.name}/", found)
        elif entry.name.endswith(".html"):
            found.append(prefix + entry.name)
