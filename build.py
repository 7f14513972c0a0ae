"""Entry point: `python build.py build|check|new|serve` (see README.md)."""
from kbgen.__main__ import run

if __name__ == "__main__":  # not when multiprocessing imports it in a worker
    raise SystemExit(run())
