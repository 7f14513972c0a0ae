"""Entry point: `python build.py build|check|new|serve` (see README.md)."""
from kbgen.cli import main

if __name__ == "__main__":  # not when multiprocessing imports it in a worker
    raise SystemExit(main())
