"""`python -m kbgen` (and `build.py`) run the command line, once kbgen's packages are there."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from kbgen.environment import missing_message

EXIT_USAGE = 2  #: as kbgen.cli: usage, config or set-up problems


def run(argv: Sequence[str] | None = None) -> int:
    """Check that the dependencies can be imported, then hand over to `kbgen.cli.main`
    (which imports them)."""
    problem = missing_message()
    if problem is not None:
        print(problem, file=sys.stderr)
        return EXIT_USAGE
    from kbgen.cli import main

    return main(argv)


def exit_now(code: int) -> NoReturn:
    """End a finished command without tearing down its heap.

    After a build of thousands of pages, freeing every object one by one (and the
    collector's final pass over them) takes longer than the build of one edited page. All
    output is written and flushed by then, and the operating system reclaims the memory at
    once. (atexit handlers are skipped: kbgen registers none, and its worker pools are
    closed and joined before a command returns.)
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":  # not when multiprocessing imports it in a worker
    exit_now(run())
