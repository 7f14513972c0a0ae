"""`python -m kbgen` (and `build.py`) run the command line, once kbgen's packages are there."""

from __future__ import annotations

import sys
from collections.abc import Sequence

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


if __name__ == "__main__":  # not when multiprocessing imports it in a worker
    raise SystemExit(run())
