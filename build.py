"""Entry point: `python build.py build|check|new|serve` (see README.md)."""
from kbgen.__main__ import exit_now, run

if __name__ == "__main__":  # not when multiprocessing imports it in a worker
    exit_now(run())
