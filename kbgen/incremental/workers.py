"""Worker processes for the incremental builder: the pool policy, and how work reaches a pool.

Input: how many workers, and the state the work shares (the page loader, or the render
session with its sink and chunks). Output: a pool whose workers each received that state once,
at start-up, as the pool initializer's argument, and tasks that are plain module functions
`task(state, item)`, sent by reference (`with_state(task)`).

The parent keeps no module-level hand-off: the state travels as an argument. With the fork
start method it is inherited by the worker at no cost (the index, the compiled templates,
the in-memory cache), never pickled; with forkserver or spawn it is pickled once per worker.
Only the worker process itself remembers it, for the tasks it runs (`_ThisWorker`).

Pools are made by a `PoolFactory`, injected into `Builder` (the default: `process_pool`), so
a test or another embedding can run the same work in-process (a factory that yields None)
or count what is started; the output never depends on it.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

from kbgen.incremental.sealing import CacheKey, adopt_key, cache_key

if TYPE_CHECKING:
    import multiprocessing.pool

S = TypeVar("S")
A = TypeVar("A")
R = TypeVar("R")
T = TypeVar("T")


class PoolFactory(Protocol):
    """Makes a pool of `jobs` workers that share `state`; yields None when it cannot (the
    caller then does the work in-process)."""

    def __call__(
        self, jobs: int, state: object, *, require_fork: bool = False
    ) -> AbstractContextManager[multiprocessing.pool.Pool | None]: ...


def forkable() -> bool:
    """Workers can be forked: this process has no other threads (serve's HTTP server and
    watcher make forking unsafe)."""
    import multiprocessing

    return threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods()


@contextlib.contextmanager
def process_pool(
    jobs: int, state: object, *, require_fork: bool = False
) -> Iterator[multiprocessing.pool.Pool | None]:
    """A pool of `jobs` worker processes, terminated (not awaited) if anything goes wrong.

    `fork` is used when this process has no other threads: workers then inherit `state`
    and everything built so far at no cost. Otherwise workers start fresh with
    `forkserver`, receiving `state` pickled, and callers that need inherited state
    (`require_fork`) get None and run in-process instead. Workers ignore Ctrl-C; the parent
    receives it and terminates them.
    """
    import multiprocessing

    methods = multiprocessing.get_all_start_methods()
    if forkable():
        method = "fork"
    elif require_fork:
        yield None
        return
    else:
        method = "forkserver" if "forkserver" in methods else "spawn"
    context = multiprocessing.get_context(method)
    # The build runs with the cyclic GC off (see builder). Workers turn it back on, or
    # Python-Markdown's and Jinja's reference cycles pile up in them (~8 KB per page); and
    # freezing what exists now keeps their collections off the objects they share with this
    # process, which would otherwise be copied page by page (the documented recipe for fork).
    gc.freeze()
    # The cache key is resolved here, before any worker exists, and handed to each: workers
    # must seal entries with the key the parent opens them with (even a key for this run only).
    key = cache_key()
    try:
        pool = context.Pool(jobs, _worker_start, (state, key))
        try:
            yield pool
        except BaseException:
            pool.terminate()
            pool.join()
            raise
        pool.close()
        pool.join()
    finally:
        gc.unfreeze()


def with_state(task: Callable[[S, A], R]) -> Callable[[A], R]:
    """`task` as a pool task: called in the worker with the state the worker started with.
    Picklable by reference (a module function in a `partial`), so nothing else is sent."""
    return functools.partial(_run_with_state, task)


def shrinking_chunks(
    items: Sequence[T], workers: int, smallest: int, largest: int
) -> list[list[T]]:
    """`items` cut into chunks for `workers` processes that take them as they become free.

    Chunks shrink towards the end (each a share of what is left), so the processes finish
    within a small chunk of each other instead of one working alone through a large one.
    """
    chunks: list[list[T]] = []
    start = 0
    while start < len(items):
        size = max(smallest, min(largest, (len(items) - start) // (workers * 3)))
        chunks.append(list(items[start : start + size]))
        start += size
    return chunks


class _ThisWorker:
    """The state this worker process was started with. Written once, by `_worker_start`,
    in the worker only: the parent process never sets it."""

    state: ClassVar[object] = None


def _worker_start(state: object, key: CacheKey) -> None:
    import multiprocessing
    import signal

    assert multiprocessing.parent_process() is not None, "the pool initializer runs in workers"
    adopt_key(key)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    gc.enable()
    _ThisWorker.state = state


def _run_with_state(task: Callable[[Any, A], R], item: A) -> R:
    assert _ThisWorker.state is not None, "a pool task outside a worker started with state"
    return task(_ThisWorker.state, item)


__all__ = ["PoolFactory", "forkable", "process_pool", "shrinking_chunks", "with_state"]
