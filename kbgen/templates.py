"""The template engine: Jinja2 configured for the site, and its problems as diagnostics.

Input: the `Config` (templates folder, render time limit) and optionally a `BytecodeStore`
(compiled templates kept between processes). Output: `Renderer.render(template, context)`
-> HTML, or `TemplateProblem` carrying a `Diagnostic` at the template line: syntax errors,
missing includes, undefined variables, templates that include themselves, and renders that
run past the time limit (stopped by a watchdog thread). `merge_repeated` folds one mistake
seen on many pages into one message.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import os
import re
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, cast

import jinja2
import jinja2.meta
import jinja2.nodes

from kbgen.config_types import Config
from kbgen.diagnostics import Diagnostic, error


class TemplateProblem(Exception):
    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


_FOR_PAGE = re.compile(r" \((while rendering|needed for) ([^()]+)\)$")


def merge_repeated(diagnostics: Sequence[Diagnostic]) -> list[Diagnostic]:
    """One diagnostic per template problem, not one per page it breaks.

    A mistake in a template used by 1,000 pages would otherwise be printed 1,000 times; it is
    printed once, naming the first page (by node name) and how many more it broke.
    """
    # In order of first appearance: a lone diagnostic under its position in the list, a
    # template problem under what it says apart from the page, with the pages it broke.
    groups: dict[object, tuple[Diagnostic, list[str]]] = {}
    for position, diagnostic in enumerate(diagnostics):
        found = _FOR_PAGE.search(diagnostic.message)
        if found is None:
            groups[position] = (diagnostic, [])
            continue
        key = (
            diagnostic.path,
            diagnostic.line,
            diagnostic.col,
            diagnostic.severity,
            diagnostic.message[: found.start()],
            found.group(1),
            diagnostic.hint,
        )
        groups.setdefault(key, (diagnostic, []))[1].append(found.group(2))
    merged: list[Diagnostic] = []
    for diagnostic, pages in groups.values():
        if pages:
            found = _FOR_PAGE.search(diagnostic.message)
            assert found is not None
            pages.sort()
            more = f" and {len(pages) - 1} more" if len(pages) > 1 else ""
            message = f"{diagnostic.message[: found.start()]} ({found.group(1)} {pages[0]}{more})"
            diagnostic = dataclasses.replace(diagnostic, message=message)
        merged.append(diagnostic)
    return merged


class BytecodeStore(Protocol):
    """Where compiled templates are kept between processes (the incremental builder passes
    `kbgen.incremental.cache.SealedBytecodeStore`, which authenticates what it reads)."""

    def load(self, key: str) -> bytes | None: ...

    def store(self, key: str, data: bytes) -> None: ...


class _StoredBytecode(jinja2.BytecodeCache):
    """Jinja2's bytecode cache over a `BytecodeStore`. Jinja2's own FileSystemBytecodeCache
    must never be used: it unpickles and runs files at predictable names, unchecked."""

    def __init__(self, store: BytecodeStore) -> None:
        self.store = store

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        code = self.store.load(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        self.store.store(bucket.key, bucket.bytecode_to_string())


class RenderTimeout(Exception):
    """Raised inside a render that ran past its time limit (by the Watchdog)."""


class Watchdog:
    """Stops a render that runs too long, in whichever thread it runs.

    A template can loop for ever (`range(10**9)`, a recursive macro); a build must fail
    with a message instead. Signals only reach the main thread, and serve renders in
    others, so a watchdog thread holds each render's deadline and, once it passes, raises
    RenderTimeout in the rendering thread (CPython's PyThreadState_SetAsyncExc: delivered
    between bytecodes, so a single long C call is stopped when it returns). A render that
    finishes first cancels its deadline; one that races the watchdog clears the pending
    exception on the way out. One per process (`WATCHDOG`); its thread ends when no render
    has run for a second, and starts again with the next.
    """

    IDLE_S = 1.0

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._deadlines: dict[int, tuple[float, list[bool]]] = {}  #: thread -> (due, fired)
        self._running = False
        self._pid = os.getpid()

    @contextlib.contextmanager
    def limit(self, seconds: float) -> Iterator[None]:
        thread = threading.get_ident()
        fired = [False]
        if self._pid != os.getpid():  # a forked copy: no watchdog thread, and the lock may
            # have been copied while held
            self._lock, self._deadlines, self._running = threading.Condition(), {}, False
            self._pid = os.getpid()
        with self._lock:
            if not self._running:
                self._running = True
                threading.Thread(
                    target=self._watch, args=(self._lock,), name="kbgen-render-watchdog",
                    daemon=True,
                ).start()
            self._deadlines[thread] = (time.monotonic() + seconds, fired)
            self._lock.notify()
        try:
            yield
        finally:
            with self._lock:
                del self._deadlines[thread]
                if fired[0]:  # raised or still pending: never let it escape elsewhere
                    _async_raise(thread, None)
                    if sys.exc_info()[0] is None:
                        raise RenderTimeout()

    def _watch(self, lock: threading.Condition) -> None:
        with lock:
            while True:
                now = time.monotonic()
                for thread, (due, fired) in self._deadlines.items():
                    if due <= now and not fired[0]:
                        fired[0] = True
                        _async_raise(thread, RenderTimeout)
                pending = [due for due, fired in self._deadlines.values() if not fired[0]]
                if not self._deadlines and not lock.wait(self.IDLE_S) and not self._deadlines:
                    self._running = False
                    return
                if pending:
                    lock.wait(min(pending) - now)
                elif self._deadlines:
                    lock.wait(self.IDLE_S)


WATCHDOG = Watchdog()


def _async_raise(thread: int, exception: type[BaseException] | None) -> None:
    import ctypes  # here: only a render that overruns its limit needs it

    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread), ctypes.py_object(exception) if exception else None
    )


class Renderer:
    """The Jinja2 environment (templates parsed once) plus template-error translation."""

    def __init__(self, config: Config, bytecode: BytecodeStore | None = None) -> None:
        self.config = config
        # Compiled templates cached on disk (keyed by name and source checksum, so an
        # edited template is recompiled): saves ~70 ms of compiling per CLI build.
        bytecode_cache = _StoredBytecode(bytecode) if bytecode is not None else None
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(config.templates_dir)),
            autoescape=jinja2.select_autoescape(("html", "xml"), default_for_string=True),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
            # Templates cannot change under a Renderer: the pipeline makes a new one when
            # any template's digest changes. (Checking costs a stat per page rendered.)
            auto_reload=False,
            bytecode_cache=bytecode_cache,
        )
        self.env.filters["date"] = format_date
        #: template -> why it recursed without end (found after a RecursionError, this build)
        self._cycles: dict[str, Diagnostic] = {}
        self._watchdog = WATCHDOG
        #: template -> where its render was stopped, this build (RenderSession empties it)
        self.timed_out: dict[str, tuple[str, int | None]] = {}

    def render(self, template_name: str, context: Mapping[str, Any], for_page: str) -> str:
        """The page's HTML; TemplateProblem for any template error, a template that extends
        or includes itself, or a render longer than `render_time_limit` seconds."""
        cycle = self._cycles.get(template_name)
        if cycle is None and template_name not in self.timed_out:
            try:
                with self._watchdog.limit(self.config.render_time_limit):
                    return self._render(template_name, context, for_page)
            except RecursionError:
                # Only now look for a template that extends or includes itself: parsing
                # every template on every build would cost more than the render it guards.
                cycle = self._cycle(template_name) or self._too_deep(template_name)
                self._cycles[template_name] = cycle
            except RenderTimeout as exc:
                # Later pages of this build with the same template fail at once: a loop
                # that never ends would otherwise cost the limit once per page.
                self.timed_out[template_name] = self._template_frame(exc)
        if cycle is not None:
            message = f"{cycle.message} (needed for {for_page})"  # merged across pages
            raise TemplateProblem(dataclasses.replace(cycle, message=message))
        path, line = self.timed_out[template_name]
        raise TemplateProblem(
            error(
                path or f"templates/{template_name}",
                line,
                None,
                f"templates/{template_name} took longer than {self.config.render_time_limit:g}"
                f" s to render, stopped on this line (while rendering {for_page})",
                "look for a loop over a huge range or a runaway recursion here; a page that "
                "really needs longer can raise render_time_limit in config.yaml",
            )
        ) from None

    def _render(self, template_name: str, context: Mapping[str, Any], for_page: str) -> str:
        try:
            template = self.env.get_template(template_name)
            return template.render(context)
        except (RenderTimeout, RecursionError):
            raise
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateProblem(
                error(
                    self._shown(exc.filename, exc.name),
                    exc.lineno,
                    None,
                    f"template syntax error: {exc.message}",
                    "fix the Jinja2 syntax (unclosed {% block %}, {{ }} or a typo in a tag?)",
                )
            ) from None
        except jinja2.TemplateNotFound as exc:
            # Point at the {% include %}/{% extends %} that names it, when a template does.
            path, line = self._template_frame(exc)
            raise TemplateProblem(
                error(
                    path or self.config.rel(self.config.templates_dir / str(exc.name)),
                    line,
                    None,
                    f"template '{exc.name}' not found (needed for {for_page})",
                    f"create templates/{exc.name} or fix the name on this line"
                    if path
                    else f"create templates/{exc.name} or fix the include/extends name",
                )
            ) from None
        except jinja2.UndefinedError as exc:
            path, line = self._template_frame(exc)
            raise TemplateProblem(
                error(
                    path,
                    line,
                    None,
                    f"undefined template variable: {exc.message} (while rendering {for_page})",
                    "check the variable name; templates see site, page and the names "
                    "documented in README.md",
                )
            ) from None
        except Exception as exc:  # a template error, not a kbgen bug: report with position
            path, line = self._template_frame(exc)
            if path is None:
                raise
            raise TemplateProblem(
                error(
                    path,
                    line,
                    None,
                    f"template error: {type(exc).__name__}: {exc} (while rendering {for_page})",
                    "fix the expression on this template line",
                )
            ) from None

    def _shown(self, filename: str | None, name: str | None) -> str:
        if filename:
            return self.config.rel(Path(filename))
        return f"templates/{name}"

    def _template_frame(self, exc: BaseException) -> tuple[str, int | None]:
        """The innermost traceback frame inside templates/ (Jinja rewrites them to it)."""
        templates = str(self.config.templates_dir)
        found: tuple[str, int | None] = (None, None)  # type: ignore[assignment]
        for frame, line in traceback.walk_tb(exc.__traceback__):
            filename = frame.f_code.co_filename
            if filename.startswith(templates):
                found = (self.config.rel(Path(filename)), line)
        return found

    def preload(self, name: str) -> None:
        """Compile a template now (before forking workers); rendering reports its errors."""
        with contextlib.suppress(jinja2.TemplateError):
            self.env.get_template(name)

    def _too_deep(self, name: str) -> Diagnostic:
        return error(
            f"templates/{name}",
            None,
            None,
            f"templates/{name} recursed too deeply to render",
            "look for a macro or include that calls itself without an end",
        )

    def _cycle(self, name: str) -> Diagnostic | None:
        """An error if `name` reaches itself through extends/include/import (Jinja2 would
        recurse until the stack runs out, which took minutes), at the line that closes it."""
        return self._find_cycle([name], {})

    def _find_cycle(self, chain: list[str], done: dict[str, bool]) -> Diagnostic | None:
        current = chain[-1]
        for child, line in self._references(current):
            if child in chain:
                loop = " -> ".join([*chain[chain.index(child) :], child])
                verb = "extends or includes itself" if child == current else "is part of a loop"
                return error(
                    self.config.rel(self.config.templates_dir / current),
                    line,
                    None,
                    f"template '{current}' {verb}: {loop}",
                    "a template cannot extend or include itself, directly or through others; "
                    "fix the name on this line",
                )
            if child not in done:
                done[child] = True
                found = self._find_cycle([*chain, child], done)
                if found is not None:
                    return found
        return None

    def _references(self, name: str) -> list[tuple[str, int]]:
        """(template, line) for each constant name that `name` extends, includes or imports."""
        try:
            source, _, _ = self.env.loader.get_source(self.env, name)  # type: ignore[union-attr]
            tree = self.env.parse(source)
        except (jinja2.TemplateError, OSError):
            return []  # reported when the template itself is loaded
        found = []
        kinds = (jinja2.nodes.Extends, jinja2.nodes.Include, jinja2.nodes.Import,
                 jinja2.nodes.FromImport)
        for node in tree.find_all(kinds):
            target = cast(Any, node).template
            if isinstance(target, jinja2.nodes.Const) and isinstance(target.value, str):
                found.append((target.value, node.lineno))
        return found

    def template_closure(self, name: str) -> frozenset[str] | None:
        """Templates that `name` extends/includes, transitively; None if dynamic."""
        seen: set[str] = set()
        pending = [name]
        while pending:
            current = pending.pop()
            if current in seen:
                continue
            seen.add(current)
            try:
                source, _, _ = self.env.loader.get_source(self.env, current)  # type: ignore[union-attr]
                referenced = jinja2.meta.find_referenced_templates(self.env.parse(source))
            except (jinja2.TemplateError, OSError):
                continue
            for child in referenced:
                if child is None:
                    return None
                pending.append(child)
        return frozenset(seen)


def format_date(value: dt.date | None) -> str:
    if value is None:
        return ""
    return f"{value.day} {value.strftime('%B')} {value.year}"
