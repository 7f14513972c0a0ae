"""`python -m kbgen` runs the command line."""

from kbgen.cli import main

if __name__ == "__main__":  # not when multiprocessing imports it in a worker
    raise SystemExit(main())
