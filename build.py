"""Entry point: `python build.py build|check|new|serve` (see README.md)."""
from kbgen.cli import main
raise SystemExit(main())
