"""The persistent cache: exact keys, and corrupt or stale entries ignored, never trusted."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import pickle
import shutil
from pathlib import Path

import pytest
from conftest import TODAY, article, snapshot

import kbgen.incremental.markup_keys
from kbgen.config_types import MarkdownOptions
from kbgen.incremental import Builder
from kbgen.incremental.cache import CacheDir, read_entry, read_regular
from kbgen.incremental.markup_keys import engine_key, glossary_digest, markup_key
from kbgen.incremental.markup_store import (
    LazyMarkup,
    MarkupStore,
    PackIndex,
    entry_bytes,
    open_entry,
)
from kbgen.incremental.sealing import MAGIC, CacheCorrupt, seal, seal_bytes, unseal, unseal_bytes
from kbgen.incremental.stamps import stamp_of, stamp_trusted
from kbgen.markup import MarkupEngine
from kbgen.model import GlossaryTerm, Markup
from kbgen.pipeline import BuildOptions, BuildResult

MECH = "status: established"


def build(root: Path, **options: object) -> BuildResult:
    options.setdefault("today", TODAY)
    options.setdefault("jobs", 1)
    return Builder(root / "config.yaml", BuildOptions(**options)).build()  # type: ignore[arg-type]


def sample_markup() -> Markup:
    return MarkupEngine(MarkdownOptions()).convert("# Title\n\nSee [[x]] and [@k].\n", 5)


def markup_packs(root: Path) -> list[Path]:
    return sorted((root / ".kbgen-cache").glob("v*/markup/*.pack"))


@pytest.fixture
def site(make_site) -> Path:
    return make_site(
        {
            "content/mechanism/alpha.md": article("Alpha", "Alpha. See [[beta]].", extra=MECH),
            "content/mechanism/beta.md": article("Beta", "Beta. See [[alpha]].", extra=MECH),
        }
    )


# -- the envelope ---------------------------------------------------------------------------


def test_seal_round_trips_a_markup_exactly() -> None:
    markup = sample_markup()
    assert unseal(seal(markup), Markup) == markup


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: data[: len(data) // 2], id="truncated"),
        pytest.param(lambda data: data[:-1] + bytes([data[-1] ^ 0xFF]), id="bit-flip"),
        pytest.param(lambda data: b"", id="empty"),
        pytest.param(lambda data: b"not a cache file at all", id="garbage"),
        pytest.param(lambda data: data.replace(MAGIC, b"kbgen-cache 0\n"), id="old-format"),
    ],
)
def test_damaged_entries_are_refused(damage) -> None:
    with pytest.raises(CacheCorrupt):
        unseal(damage(seal(sample_markup())), Markup)


def test_valid_envelope_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(CacheCorrupt, match="expected Markup"):
        unseal(seal({"html": "<p>not a Markup</p>"}), Markup)


def test_authenticated_payload_that_does_not_unpickle_is_refused() -> None:
    from kbgen.incremental.sealing import _mac

    payload = b"\x80\x05cno_such_module\nNoSuchClass\n."
    with pytest.raises(CacheCorrupt, match="cannot unpickle"):
        unseal(MAGIC + _mac(payload) + payload, Markup)


def test_forged_entry_from_outside_is_never_unpickled(tmp_path: Path) -> None:
    """A cache file planted in the project (e.g. by a pull request) can compute a SHA-256
    but not the per-user HMAC: it is refused before pickle ever sees it."""
    import hashlib
    import pickle

    canary = tmp_path / "unpickled"

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str, str]]:
            return (open, (str(canary), "w"))

    payload = pickle.dumps(Payload())
    forged = MAGIC + hashlib.sha256(payload).digest() + payload
    with pytest.raises(CacheCorrupt, match="checksum mismatch"):
        unseal(forged, Markup)
    assert not canary.exists()


def test_cache_key_is_private_and_stable(tmp_path: Path) -> None:
    from kbgen.incremental.sealing import _load_or_create_key

    path = tmp_path / "kbgen" / "cache-key"
    first = _load_or_create_key(path)
    assert len(first.secret) == 32 and path.stat().st_mode & 0o777 == 0o600
    assert _load_or_create_key(path) == first


def test_read_entry_returns_none_for_missing_and_corrupt(tmp_path: Path) -> None:
    assert read_entry(tmp_path / "absent", Markup) is None
    path = tmp_path / "entry"
    path.write_bytes(seal(sample_markup())[:-3])
    assert read_entry(path, Markup) is None


def test_streamed_envelope_is_the_same_bytes_as_envelope_of(tmp_path: Path) -> None:
    """The state body is written through `write_envelope` (never held whole in memory): the
    file must be exactly what `envelope_of` gives, after whatever came before it."""
    import io

    from kbgen.incremental.sealing import envelope_of, open_envelope, write_envelope

    # Large enough for many pickle frames (64 KiB each) and shared references.
    shared = sample_markup()
    pages = [shared] * 50 + [sample_markup() for _ in range(2000)]
    value = {"pages": pages, "blob": b"x" * 200_000}
    handle = io.BytesIO()
    handle.write(b"header")
    write_envelope(handle, value)
    written = handle.getvalue()
    assert written[:6] == b"header" and written[6:] == envelope_of(value)
    assert handle.tell() == len(written)  # the caller can go on writing after it
    opened = open_envelope(written[6:], dict)
    assert opened == value and opened["pages"][0] is opened["pages"][49]


def test_state_file_is_replaced_only_by_a_complete_one(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from kbgen.incremental import cache as cache_module
    from kbgen.incremental.cache import load_state, save_state

    cache = CacheDir(tmp_path / "cache")
    save_state(cache, "v", ("head", 1), {"body": [sample_markup()] * 3})
    loaded = load_state(cache, "v", tuple, dict)
    assert loaded is not None and loaded[0] == ("head", 1)
    assert loaded[1]() == {"body": [sample_markup()] * 3}
    before = cache.state_path("v").read_bytes()

    def pickling_fails(handle: object, value: object) -> None:
        raise RuntimeError("interrupted while pickling")

    monkeypatch.setattr(cache_module, "write_envelope", pickling_fails)
    with pytest.raises(RuntimeError):
        save_state(cache, "v", ("head", 2), {"body": []})
    assert cache.state_path("v").read_bytes() == before  # the old state, whole
    assert [p.name for p in cache.state_path("v").parent.iterdir()] == [cache.state_path("v").name]


def test_fast_pickling_keeps_values_equal() -> None:
    markup = sample_markup()
    assert pickle.loads(pickle.dumps(markup)) == markup
    assert pickle.loads(pickle.dumps(markup.links)) == markup.links


# -- keys --------------------------------------------------------------------------------------


def test_markup_key_covers_body_position_options_glossary_and_generator() -> None:
    glossary = [GlossaryTerm("term-x", "X", "An x.")]
    base = engine_key("gen 1", MarkdownOptions().key(), glossary_digest(glossary))
    key = markup_key(base, 5, "body")
    assert markup_key(base, 5, "body") == key
    assert markup_key(base, 6, "body") != key  # positions in diagnostics depend on it
    assert markup_key(base, 5, "body!") != key
    variants = [
        engine_key("gen 2", MarkdownOptions().key(), glossary_digest(glossary)),
        engine_key("gen 1", MarkdownOptions(raw_html="allow").key(), glossary_digest(glossary)),
        engine_key("gen 1", MarkdownOptions().key(), glossary_digest([])),
        engine_key(
            "gen 1",
            MarkdownOptions().key(),
            glossary_digest([GlossaryTerm("term-x", "X", "Another x.")]),
        ),
    ]
    assert all(markup_key(v, 5, "body") != key for v in variants)


def test_glossary_digest_ignores_what_conversion_does_not_read() -> None:
    term = GlossaryTerm("term-x", "X", "An x.", line=3)
    moved = GlossaryTerm("term-x", "X", "An x.", article="some-slug", line=30)
    assert glossary_digest([term]) == glossary_digest([moved])


def test_racy_stamps_are_not_trusted(tmp_path: Path) -> None:
    path = tmp_path / "f.md"
    path.write_text("x")
    stamp = stamp_of(path)
    assert stamp is not None
    now = stamp[1]
    assert not stamp_trusted(stamp, stamp, scanned_ns=now)  # written just before the scan
    assert stamp_trusted(stamp, stamp, scanned_ns=now + 10**10)
    assert not stamp_trusted(None, None, scanned_ns=now + 10**10)


def test_store_reads_back_from_disk_in_a_new_process_view(tmp_path: Path) -> None:
    cache = CacheDir(tmp_path / "cache")
    store = MarkupStore(cache)
    store.put("ab" * 32, sample_markup())
    assert MarkupStore(cache).get("ab" * 32) is None  # not flushed yet
    store.flush()
    assert MarkupStore(cache).get("ab" * 32) == sample_markup()
    assert MarkupStore(cache).get("cd" * 32) is None


def test_pack_entry_for_another_key_is_refused() -> None:
    key, markup = open_entry(entry_bytes("k1", sample_markup()))
    assert (key, markup) == ("k1", sample_markup())
    with pytest.raises(CacheCorrupt):
        open_entry(entry_bytes("k1", sample_markup())[:-5])


def swap_two_entries(cache: CacheDir) -> tuple[Path, PackIndex]:
    """Store entries k1 and k2, then point the index of each at the other's entry."""
    store = MarkupStore(cache)
    store.put("k1", sample_markup())
    store.put("k2", sample_markup())
    store.flush()
    index_path = cache.base / "markup" / "index"
    index = read_entry(index_path, PackIndex)
    assert index is not None
    swapped = {"k1": index.entries["k2"], "k2": index.entries["k1"]}
    index_path.write_bytes(seal(PackIndex(swapped)))
    return index_path, index


def test_index_pointing_at_the_wrong_entry_is_a_miss(tmp_path: Path) -> None:
    cache = CacheDir(tmp_path / "cache")
    swap_two_entries(cache)
    fresh = MarkupStore(cache)
    assert fresh.get("k1") is None and fresh.get("k2") is None


def stored_sample(tmp_path: Path) -> CacheDir:
    """A cache folder holding sample_markup() under the key "ab" * 32, flushed to disk."""
    cache = CacheDir(tmp_path / "cache")
    store = MarkupStore(cache)
    store.put("ab" * 32, sample_markup())
    store.flush()
    return cache


def test_lazy_entries_unpickle_on_first_read_and_behave_as_the_markup(tmp_path: Path) -> None:
    cache = stored_sample(tmp_path)
    lazy = MarkupStore(cache).get_lazy("ab" * 32)
    assert isinstance(lazy, LazyMarkup)
    assert lazy._payload is not None  # verified, not unpickled
    assert lazy == sample_markup() and sample_markup() == lazy
    assert lazy._payload is None  # the first read unpickled it
    assert hash(lazy) == hash(sample_markup())
    assert lazy.links == sample_markup().links and lazy.html == sample_markup().html
    copied = pickle.loads(pickle.dumps(MarkupStore(cache).get_lazy("ab" * 32)))
    assert type(copied) is Markup and copied == sample_markup()
    replaced = dataclasses.replace(MarkupStore(cache).get_lazy("ab" * 32), word_count=1)
    assert replaced.word_count == 1 and replaced.html == sample_markup().html
    store_again = MarkupStore(cache)
    assert store_again.get_lazy("ab" * 32) is store_again.get_lazy("ab" * 32)  # one object
    assert MarkupStore(cache).get_lazy("cd" * 32) is None


def test_lazy_entries_are_verified_when_they_load(tmp_path: Path) -> None:
    cache = CacheDir(tmp_path / "cache")
    index_path, index = swap_two_entries(cache)
    assert MarkupStore(cache).get_lazy("k1") is None  # another key's entry
    index_path.write_bytes(seal(index))
    (pack,) = markup_packs_in(cache)
    data = bytearray(pack.read_bytes())
    data[-3] ^= 0xFF  # damage the last entry
    pack.write_bytes(bytes(data))
    fresh = MarkupStore(cache)
    entries = sorted(index.entries, key=lambda k: index.entries[k][1])
    assert fresh.get_lazy(entries[0]) is not None
    assert fresh.get_lazy(entries[-1]) is None


def markup_packs_in(cache: CacheDir) -> list[Path]:
    return sorted((cache.base / "markup").glob("*.pack"))


def test_flushes_are_compacted_and_dead_packs_deleted(tmp_path: Path) -> None:
    cache = CacheDir(tmp_path / "cache")
    folder = cache.base / "markup"
    store = MarkupStore(cache)
    count = MarkupStore.MAX_PACKS + 3
    for number in range(count):  # like serve: one small pack per build
        store.put(f"k{number}", sample_markup())
        store.flush()
    assert len(list(folder.glob("*.pack"))) == count
    store.flush(live_keys=[f"k{n}" for n in range(count)])  # too many packs: compacted
    assert len(list(folder.glob("*.pack"))) == 1
    store.put("extra", sample_markup())
    store.flush(live_keys=["extra"])  # the big pack is now dead: deleted
    assert [p.name for p in folder.glob("*.pack")] == [store._disk_index()["extra"][0]]
    fresh = MarkupStore(cache)
    assert fresh.get("extra") == sample_markup()
    assert fresh.get("k1") is None


@pytest.mark.parametrize("folder", ["v1", "v1/markup", "v1/state", "v1/jinja"])
def test_a_symlinked_folder_in_the_cache_is_an_error_and_never_written_through(
    site: Path, tmp_path: Path, folder: str
) -> None:
    assert build(site).ok
    before_site = snapshot(site / "site")
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "markup").mkdir(parents=True)
    (elsewhere / "mine.pack").write_text("not kbgen's")
    (elsewhere / "markup" / "mine.pack").write_text("not kbgen's")
    shutil.rmtree(site / ".kbgen-cache")
    link = site / ".kbgen-cache" / folder
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(elsewhere)
    before = snapshot(elsewhere)
    result = build(site)
    assert [d.format() for d in result.diagnostics] == [
        f"config.yaml: error: cannot use cache_dir '.kbgen-cache' (the default): not a real "
        f"folder (a symlink or a file) ({link})\n"
        "  hint: make the folder writable, delete it (it only holds the build cache), or point "
        "cache_dir in config.yaml at a writable folder; nothing was built"
    ]
    assert snapshot(elsewhere) == before and snapshot(site / "site") == before_site


def test_a_cache_dir_that_cannot_be_created_is_an_error_at_its_line(site: Path) -> None:
    assert build(site).ok
    before = snapshot(site / "site")
    (site / "notes.txt").write_text("mine", "utf-8")
    config = site / "config.yaml"
    config.write_text("cache_dir: notes.txt/cache\n" + config.read_text("utf-8"), "utf-8")
    result = build(site)
    assert [d.format() for d in result.diagnostics] == [
        "config.yaml:1:12: error: cannot use cache_dir 'notes.txt/cache': Not a directory\n"
        "  hint: make the folder writable, delete it (it only holds the build cache), or point "
        "cache_dir in config.yaml at a writable folder; nothing was built"
    ]
    assert snapshot(site / "site") == before
    assert build(site, write=False).ok  # check reads no cache it cannot have


def test_cache_reads_open_only_bounded_regular_files(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_bytes(b"data")
    (tmp_path / "link").symlink_to(target)
    os.mkfifo(tmp_path / "fifo")
    with (tmp_path / "big").open("wb") as handle:
        handle.truncate(100)
    assert read_regular(target) == b"data"
    assert read_regular(tmp_path / "link") is None
    assert read_regular(tmp_path / "fifo") is None  # and does not block
    assert read_regular(Path("/dev/zero")) is None
    assert read_regular(tmp_path / "big", limit=99) is None
    assert read_regular(tmp_path / "missing") is None


def test_sealed_bytes_open_only_under_their_own_label() -> None:
    sealed = seal_bytes("a", b"code")
    assert unseal_bytes("a", sealed) == b"code"
    assert unseal_bytes("b", sealed) is None
    assert unseal_bytes("a", sealed[:-1] + b"x") is None
    assert unseal_bytes("a", MAGIC + bytes(32) + b"a\0code") is None


# -- builds with a damaged cache -------------------------------------------------------------


def test_cache_folder_is_marked_and_ignored_by_git(site: Path) -> None:
    assert build(site).ok
    cache = site / ".kbgen-cache"
    assert (cache / ".gitignore").read_text() == "*\n"
    assert (
        (cache / "CACHEDIR.TAG")
        .read_text()
        .startswith("Signature: 8a477f597d28d172789f06886806bc55")
    )
    assert len(markup_packs(site)) == 1  # one pack for the whole build, not a file per page


def test_no_cache_option_writes_no_cache(site: Path) -> None:
    assert build(site, cache=False).ok
    assert not (site / ".kbgen-cache").exists()


@pytest.mark.parametrize("warm", [False, True], ids=["cold", "warm"])
@pytest.mark.parametrize(
    "damage", ["truncate", "flip", "garbage", "wrong-type", "bad-index", "no-pack"]
)
def test_corrupt_markup_entries_are_converted_again(site: Path, damage: str, warm: bool) -> None:
    first = build(site)
    expected = snapshot(site / "site")
    (pack,) = markup_packs(site)
    data = pack.read_bytes()
    if damage == "truncate":
        pack.write_bytes(data[: len(data) // 3])
    elif damage == "flip":
        pack.write_bytes(bytes(b ^ 1 if i % 97 == 50 else b for i, b in enumerate(data)))
    elif damage == "garbage":
        pack.write_bytes(b"\x00" * len(data))
    elif damage == "wrong-type":
        pack.write_bytes(entry_bytes("k", ["not", "markup"]) * 2)  # type: ignore[arg-type]
    elif damage == "bad-index":
        (pack.parent / "index").write_bytes(b"not an index")
    else:
        pack.unlink()
    if warm:  # a real edit: beta's damaged entry is needed to resolve links
        alpha = site / "content/mechanism/alpha.md"
        alpha.write_text(alpha.read_text().replace("Alpha. See", "Alpha now. See"))
    else:  # no saved state: every page is loaded
        (site / ".kbgen-cache/v1/state").rename(site / "state-aside")
    result = build(site)
    assert result.ok, [d.format() for d in result.diagnostics]
    assert result.mode == ("warm" if warm else "cold")
    assert result.converted == 2  # nothing damaged was trusted
    if not warm:
        assert snapshot(site / "site") == expected
    assert [d.format() for d in result.diagnostics] == [d.format() for d in first.diagnostics]
    store = MarkupStore(CacheDir(site / ".kbgen-cache"))
    keys = list(read_entry(next(site.glob(".kbgen-cache/v*/markup/index")), PackIndex).entries)
    assert len(keys) == 2 and all(store.get(k) is not None for k in keys)  # rewritten


@pytest.mark.parametrize("damage", ["truncate", "garbage", "wrong-type", "delete"])
def test_corrupt_state_means_a_cold_build_with_identical_output(site: Path, damage: str) -> None:
    assert build(site).ok
    expected = snapshot(site / "site")
    (state,) = (site / ".kbgen-cache").glob("v*/state/*")
    if damage == "truncate":
        state.write_bytes(state.read_bytes()[:100])
    elif damage == "garbage":
        state.write_bytes(b"garbage")
    elif damage == "wrong-type":
        state.write_bytes(seal({"records": {}}))
    else:
        state.unlink()
    result = build(site)
    assert result.ok
    assert result.mode == "cold"
    assert result.converted == 0  # the conversions are still good
    assert snapshot(site / "site") == expected


def test_state_from_another_generator_version_is_not_used(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert build(site).ok
    real = kbgen.incremental.markup_keys.generator_id()
    monkeypatch.setattr("kbgen.incremental.builder.generator_id", lambda: real + "|newer")
    result = build(site)
    assert result.ok and result.mode == "cold"
    assert result.converted == 2  # new generator: old conversions are not trusted either


def test_review_warnings_are_never_stale_across_days(site: Path) -> None:
    assert not [d for d in build(site).diagnostics if "overdue" in d.message]
    result = build(site, today=TODAY + dt.timedelta(days=500))
    overdue = [d for d in result.diagnostics if "review overdue" in d.message]
    assert len(overdue) == 2
    assert result.converted == 0
    back = build(site)
    assert not [d for d in back.diagnostics if "overdue" in d.message]


def test_leftover_temporary_files_are_ignored(site: Path) -> None:
    assert build(site).ok
    (pack,) = markup_packs(site)
    (pack.parent / f".{pack.name}.123-abcd.tmp").write_bytes(b"partial")
    (site / "content/mechanism/alpha.md").write_text(
        article("Alpha", "Alpha changed. See [[beta]].", extra=MECH)
    )
    result = build(site)
    assert result.ok and result.converted == 1


def test_conversions_of_a_failed_build_are_kept(site: Path) -> None:
    (site / "content/mechanism/gamma.md").write_text(
        article("Gamma", "Gamma links [[nowhere]].", extra=MECH)
    )
    failed = build(site)
    assert not failed.ok and failed.converted == 3
    (site / "content/mechanism/gamma.md").write_text(
        article("Gamma", "Gamma links [[alpha]].", extra=MECH)
    )
    fixed = build(site)
    assert fixed.ok and fixed.converted == 1  # only the edited page is converted again


def test_pending_conversions_are_written_in_bounded_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(MarkupStore, "FLUSH_EVERY", 3)
    cache = CacheDir(tmp_path / "cache")
    store = MarkupStore(cache)
    for number in range(7):
        store.put(f"k{number}", sample_markup())
    assert len(list((cache.base / "markup").glob("*.pack"))) == 2  # 3 + 3 written, 1 pending
    store.flush()
    fresh = MarkupStore(cache)
    assert all(fresh.get(f"k{n}") == sample_markup() for n in range(7))


def test_lazy_entries_have_the_fingerprint_of_their_markup(tmp_path: Path) -> None:
    from kbgen.incremental.fingerprints import canonical

    lazy = MarkupStore(stored_sample(tmp_path)).get_lazy("ab" * 32)
    assert canonical(lazy) == canonical(sample_markup())


@pytest.mark.parametrize("module", ["markup.py", "incremental/cache.py"])
def test_editing_any_kbgen_module_changes_the_generator_id(module: str) -> None:
    # The stamp once covered only kbgen/incremental/: a fix to kbgen/markup.py was not
    # seen and warm builds kept the old conversions.
    path = Path(kbgen.incremental.markup_keys.__file__).parent.parent / module
    stat = path.stat()
    before = kbgen.incremental.markup_keys.generator_id()
    try:
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
        assert kbgen.incremental.markup_keys.generator_id() != before
    finally:
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
