"""Fingerprints: a stable digest of any value a rendered node read, and of any recorded key.

Input: a dependency key (`DepKey`, as `recording.py` records it) and this build's `SiteIndex`,
URL table and template digests.
Output: the key's fingerprint now (`Fingerprinter`): equal across builds and processes
exactly when the value read is equal (`canonical`), `MISSING` for what does not exist.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import hashlib
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from kbgen.model import Page

if TYPE_CHECKING:
    from kbgen.site_index import SiteIndex

DepKey = tuple[str, ...]
MISSING = "\x00missing"  #: fingerprint of something that does not exist
_INLINE_LIMIT = 96  #: canonical forms up to this length are kept as-is, longer ones hashed

_SCALARS = frozenset({str, int, float, bool, type(None)})


def canonical(value: object) -> str:
    """A text form that is equal exactly when the values are equal, in every process.

    (`repr` is not enough: set order depends on the per-process string hash seed.) Type
    checks are exact-type lookups first because this runs for every recorded key of every
    warm build; the ABC check for mappings is slow and comes last.
    """
    kind = type(value)
    if kind in _SCALARS:
        return repr(value)
    if kind is tuple or kind is list:
        items = cast(tuple[object, ...], value)
        if all(type(item) is str for item in items):
            return "(" + ",".join(map(repr, items)) + ")"
        return "(" + ",".join(map(canonical, items)) + ")"
    names = field_names(kind)
    if names is not None:
        values = [getattr(value, name) for name in names]
        label = _dataclass_label(kind)
        if all(type(item) in _SCALARS for item in values):  # links, backlinks: one level
            return f"{label}[{','.join(map(repr, values))}]"
        return f"{label}[{','.join(map(canonical, values))}]"
    if isinstance(value, (frozenset, set)):
        return "{" + ",".join(sorted(map(canonical, value))) + "}"
    if isinstance(value, (dt.date, dt.datetime)):
        return f"{kind.__name__}({value.isoformat()})"
    if isinstance(value, enum.Enum):
        return f"{kind.__name__}.{value.name}"
    if isinstance(value, Mapping):
        return "<" + ",".join(f"{canonical(k)}:{canonical(v)}" for k, v in value.items()) + ">"
    if isinstance(value, (str, int, float, tuple)):  # subclasses of the fast cases
        return f"{kind.__name__}:{value!r}"
    # Unknown objects: repr may hold an address, which only ever makes the key look changed.
    return f"?{kind.__name__}:{value!r}"


_FIELD_NAMES: dict[type, tuple[str, ...] | None] = {}
_LABELS: dict[type, str] = {}


def _dataclass_label(cls: type) -> str:
    """The name of the dataclass that defines `cls`'s fields: a subclass that only changes
    how the value is stored (markup_store.LazyMarkup) has the same text form as its `Markup`."""
    label = _LABELS.get(cls)
    if label is None:
        owner = next(c for c in cls.__mro__ if "__dataclass_fields__" in c.__dict__)
        label = _LABELS[cls] = owner.__name__
    return label


def field_names(cls: type) -> tuple[str, ...] | None:
    """A dataclass's field names (None for other types), looked up once per type."""
    try:
        return _FIELD_NAMES[cls]
    except KeyError:
        names = (
            tuple(f.name for f in dataclasses.fields(cls))
            if dataclasses.is_dataclass(cls)
            else None
        )
        _FIELD_NAMES[cls] = names
        return names


def fingerprint(value: object) -> Hashable:
    text = canonical(value)
    if len(text) <= _INLINE_LIMIT:
        return text
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


@dataclass
class Fingerprinter:
    """Computes the current fingerprint of any dependency key, memoised per build."""

    index: SiteIndex
    files: Mapping[str, str]  #: page key -> output file (the view's URL table)
    templates: Mapping[str, str]  #: template name -> digest of its source
    _memo: dict[DepKey, Hashable] = field(default_factory=dict)

    def __call__(self, key: DepKey) -> Hashable:
        found = self._memo.get(key)
        if found is None:
            found = self._compute(key)
            self._memo[key] = found
        return found

    def _compute(self, key: DepKey) -> Hashable:
        kind = key[0]
        if kind == "page":
            page = self.index.pages.get(key[1])
            if page is None:
                return MISSING
            if key[2] == "*":
                return fingerprint(page)
            return fingerprint(_follow(page, key[2]))
        if kind == "map":
            if key[1] == "pages":  # values are read through page keys; only presence here
                return key[2] in self.index.pages
            mapping = self._mapping(key[1])
            return MISSING if mapping is None else fingerprint(mapping.get(key[2], MISSING))
        if kind == "keys":
            mapping = self._mapping(key[1])
            return MISSING if mapping is None else fingerprint(tuple(mapping))
        if kind == "field":
            return fingerprint(getattr(self.index, key[1], MISSING))
        if kind == "template":
            return self.templates.get(key[1], MISSING)
        if kind == "templates":
            return fingerprint(sorted(self.templates.items()))
        return MISSING  # an unknown kind of key always counts as changed

    def _mapping(self, name: str) -> Mapping[str, object] | None:
        if name == "files":
            return self.files
        value = getattr(self.index, name, None)
        return value if isinstance(value, Mapping) else None


def _follow(page: Page, path: str) -> object:
    """The value at a recorded path: attribute names, tuple positions, `#len`."""
    value: object = page
    try:
        for part in path.split("."):
            if part == "#len":
                value = len(value)  # type: ignore[arg-type]
            elif part.isdigit():
                value = value[int(part)]  # type: ignore[index]
            else:
                value = getattr(value, part)
    except (AttributeError, IndexError, TypeError):
        return MISSING
    return value
