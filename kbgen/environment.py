"""Is kbgen installed? The check run before anything else imports a third-party library.

Input: nothing (the running interpreter). Output: None when every package kbgen needs can
be imported, else the message to print: which distributions are missing, for which
interpreter, and the set-up command from README.md. Without it, running `build.py` with an
interpreter the project was not installed into (`python build.py` instead of
`.venv/bin/python build.py`) failed deep inside a build with a traceback calling itself a
kbgen bug. Only `importlib.util.find_spec` is used: nothing is imported, so the check costs
a millisecond.
"""

from __future__ import annotations

import importlib.util
import sys

#: import name -> distribution name, as pyproject.toml's `dependencies` list them
REQUIRED = {
    "markdown": "markdown",
    "jinja2": "jinja2",
    "yaml": "pyyaml",
    "pygments": "pygments",
    "watchdog": "watchdog",
    "nh3": "nh3",
}
SETUP = "python3 -m venv .venv && .venv/bin/pip install -e ."


def missing_distributions(required: dict[str, str] | None = None) -> list[str]:
    """The distributions (of `required`, default REQUIRED) whose module cannot be found."""
    missing = []
    for module, distribution in (REQUIRED if required is None else required).items():
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(distribution)
    return missing


def missing_message(required: dict[str, str] | None = None) -> str | None:
    missing = missing_distributions(required)
    if not missing:
        return None
    names = ", ".join(missing[:-1]) + (" and " if len(missing) > 1 else "") + missing[-1]
    packages = "package" if len(missing) == 1 else "packages"
    return (
        f"error: kbgen needs the Python {packages} {names}, not installed for "
        f"{sys.executable}\n"
        f"  hint: set the project up once ({SETUP}), then run it with that interpreter: "
        ".venv/bin/python build.py ..."
    )
