"""Recording what a node reads: proxies over the `SiteIndex` that note each read as a key.

Input: this build's `SiteIndex` and a `Recorder` per node being rendered.
Output: the same index seen through recording wrappers (`recording_index`): every mapping
lookup (`backlinks[k]`, `pages_by_tag[t]`, ...), every iteration over a mapping's keys and
every attribute read on a page (`pages[k].meta.title`, `pages[k].markup.html`, ...) adds a
dependency key (`DepKey`) to the recorder; `template_keys` are the keys of a template
closure. `deps.DepGraph` keeps the keys and their fingerprints between builds.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from kbgen.incremental.fingerprints import DepKey, field_names
from kbgen.model import Page

if TYPE_CHECKING:
    from kbgen.site_index import SiteIndex

V = TypeVar("V")


class Recorder:
    """Collects the dependency keys read while one node is built."""

    __slots__ = ("keys",)

    def __init__(self) -> None:
        self.keys: set[DepKey] = set()

    def add(self, key: DepKey) -> None:
        self.keys.add(key)


class RecordingMapping(Mapping[str, V]):
    """A read-only mapping that records each key looked up (and iteration over its keys)."""

    __slots__ = ("_data", "_name", "_recorder", "_wrap")

    def __init__(
        self,
        name: str,
        data: Mapping[str, V],
        recorder: Recorder,
        wrap: Callable[[str, V], V] | None = None,
    ) -> None:
        self._name = name
        self._data = data
        self._recorder = recorder
        self._wrap = wrap

    def __getitem__(self, key: str) -> V:
        self._recorder.add(("map", self._name, key))
        value = self._data[key]
        return self._wrap(key, value) if self._wrap is not None else value

    def get(self, key: str, default: Any = None) -> Any:
        self._recorder.add(("map", self._name, key))
        if key not in self._data:
            return default
        value = self._data[key]
        return self._wrap(key, value) if self._wrap is not None else value

    def __contains__(self, key: object) -> bool:
        self._recorder.add(("map", self._name, str(key)))
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        self._recorder.add(("keys", self._name))
        return iter(self._data)

    def __len__(self) -> int:
        self._recorder.add(("keys", self._name))
        return len(self._data)


_PLAIN_VALUES = frozenset({str, int, float, bool, type(None), dt.date, frozenset})


def _record_value(value: object, key: str, path: str, recorder: Recorder) -> Any:
    """Return `value` as read from page `key` at `path`, recording the read.

    Dataclass values and tuples of dataclasses come back as proxies, so reading
    `links[3].target` depends on that one field, not on every link and its position (a line
    added above a link must not re-render the pages showing where it points).
    """
    kind = type(value)
    if kind in _PLAIN_VALUES:  # most reads (titles, urls, dates): no proxy needed
        recorder.keys.add(("page", key, path))
        return value
    if callable(value):
        recorder.add(("page", key, "*"))  # a method could read anything
        return value
    if field_names(kind) is not None:
        return _ObjectProxy(value, key, path, recorder)
    if isinstance(value, tuple) and value and field_names(type(value[0])) is not None:
        return _SequenceProxy(value, key, path, recorder)
    recorder.add(("page", key, path))
    return value


class _ObjectProxy:
    """A dataclass inside a recorded page (`meta`, `markup`, one link): records each read."""

    __slots__ = ("_key", "_path", "_recorder", "_value")

    def __init__(self, value: object, key: str, path: str, recorder: Recorder) -> None:
        self._value = value
        self._key = key
        self._path = path
        self._recorder = recorder

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._value, name)
        return _record_value(value, self._key, f"{self._path}.{name}", self._recorder)

    def __eq__(self, other: object) -> bool:  # compares the whole value: depends on it
        self._recorder.add(("page", self._key, self._path))
        return self._value == _unwrapped(other)

    __hash__ = None  # type: ignore[assignment]


class _SequenceProxy:
    """A tuple of dataclasses inside a recorded page: indexing records one element."""

    __slots__ = ("_key", "_path", "_recorder", "_value")

    def __init__(self, value: tuple[object, ...], key: str, path: str, recorder: Recorder) -> None:
        self._value = value
        self._key = key
        self._path = path
        self._recorder = recorder

    def _whole(self) -> tuple[object, ...]:
        self._recorder.add(("page", self._key, self._path))
        return self._value

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return self._whole()[index]
        try:
            item = self._value[index]
        except IndexError:
            self._recorder.add(("page", self._key, f"{self._path}.#len"))
            raise
        position = index if index >= 0 else len(self._value) + index
        return _record_value(item, self._key, f"{self._path}.{position}", self._recorder)

    def __len__(self) -> int:
        self._recorder.add(("page", self._key, f"{self._path}.#len"))
        return len(self._value)

    def __bool__(self) -> bool:
        return len(self) > 0

    def __iter__(self) -> Iterator[object]:
        return iter(self._whole())

    def __contains__(self, item: object) -> bool:
        return item in self._whole()

    def __eq__(self, other: object) -> bool:
        return self._whole() == other

    __hash__ = None  # type: ignore[assignment]


class PageProxy:
    """A page as recorded nodes see it: attribute reads become dependency keys.

    `page.meta.title` records `("page", key, "meta.title")`, `page.markup.links[2].target`
    records `("page", key, "markup.links.2.target")`; a method call records the whole page
    (`"*"`).
    """

    __slots__ = ("_key", "_page", "_recorder")

    def __init__(self, page: Page, key: str, recorder: Recorder) -> None:
        self._page = page
        self._key = key
        self._recorder = recorder

    def __getattr__(self, name: str) -> Any:
        return _record_value(getattr(self._page, name), self._key, name, self._recorder)

    def __eq__(self, other: object) -> bool:  # compares the whole page: depends on it
        self._recorder.add(("page", self._key, "*"))
        return self._page == _unwrapped(other)

    __hash__ = None  # type: ignore[assignment]


def _unwrapped(value: object) -> object:
    if isinstance(value, PageProxy):
        return value._page
    if isinstance(value, _ObjectProxy):
        return value._value
    return value


def recording_index(index: SiteIndex, recorder: Recorder) -> SiteIndex:
    """The same index, with every mapping wrapped so reads land in `recorder`.

    Fields that are not mappings (the glossary tuple) cannot record individual reads, so the
    node depends on the whole field from the start: conservative, and automatic for fields
    added to `SiteIndex` later.
    """
    changes: dict[str, Any] = {}
    for spec in dataclasses.fields(index):
        value = getattr(index, spec.name)
        if spec.name == "pages":

            def wrap(key: str, page: Page) -> Page:
                return cast(Page, PageProxy(page, key, recorder))

            changes["pages"] = RecordingMapping("pages", value, recorder, wrap)
        elif isinstance(value, Mapping):
            changes[spec.name] = RecordingMapping(spec.name, value, recorder)
        else:
            recorder.add(("field", spec.name))
    return dataclasses.replace(index, **changes)


def template_keys(closure: frozenset[str] | None) -> set[DepKey]:
    """Keys for a template and everything it extends/includes; None = a dynamic include."""
    if closure is None:
        return {("templates",)}
    return {("template", name) for name in closure}
