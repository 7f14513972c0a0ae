"""Path safety: refuse output and cache folders a build could destroy or pollute something with.

Input: a folder kbgen would write (the output folder, replaced wholesale by each build, or the
cache folder), the project root, the source folders, and where the folder was chosen
(`OutputSetting`: a config.yaml line or `--output`).
Output: a list of `Diagnostic`s (empty when the folder is safe), each at the place the folder
was set. `config.load_config` runs these before anything else; `write.py` checks
`MARKER_FILE`, the proof that a previous build made an output folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from kbgen.config_types import OutputSetting, shown_path
from kbgen.diagnostics import Diagnostic, error, no_file_error

MARKER_FILE = ".kbgen-site"


def check_output_dir(
    output: Path, root: Path, sources: tuple[Path, ...], setting: OutputSetting
) -> list[Diagnostic]:
    """Refuse output folders whose replacement would destroy something.

    The output folder is replaced wholesale by each build, so it must not be `/`, home, the
    project root or a parent of it, overlap a source folder, or hold a `.git` repository; an
    existing non-empty folder must carry our marker file (proof that a previous build made
    it). Real paths are compared, so a symlink cannot disguise any of these.
    `output` is the path as configured (absolute, symlinks not yet resolved).
    """
    real = Path(output).resolve()
    problem = _output_problem(real, root, sources)
    if problem is None:
        return []
    where = setting.name
    default = " (the default)" if setting.position is None and not setting.from_cli else ""
    literal = Path(os.path.normpath(Path(output).absolute()))
    resolved = f" (which resolves to '{real}')" if literal != real else ""
    message = (
        f"refusing to use {where} '{setting.written}'{default}{resolved}: it {problem}; a "
        "build replaces the whole output folder"
    )
    hint = (
        f"point {where} at a new folder, or at one kbgen built before; nothing was deleted"
    )
    return [setting.diagnostic(message, hint)]


def check_cache_dir(
    cache: Path,
    written: str,
    root: Path,
    sources: tuple[Path, ...],
    output: Path | None,
    setting: OutputSetting,
) -> list[Diagnostic]:
    """Refuse cache folders a build would write into wrongly.

    The build writes `v1/`, `CACHEDIR.TAG` and a `.gitignore` of `*` into the cache folder,
    so it must not be, hold or lie inside a source folder or the output folder (the cache
    would be published, or `templates/` ignored by git), nor be the project, home or root
    folder; a regular file by that name is refused too. `cache` is resolved already.
    """
    problem = _placement_problem(cache, root, sources, output)
    if problem is None and cache.exists() and not cache.is_dir():
        problem = "exists and is not a folder"
    if problem is None:
        return []
    default = " (the default)" if setting.position is None else ""
    message = f"refusing to use cache_dir '{written}'{default}: it {problem}"
    hint = "point cache_dir at a folder of its own, such as .kbgen-cache"
    if setting.position is None:
        return [no_file_error(setting.shown, message, hint)]
    return [error(setting.shown, *setting.position, message, hint)]


def _placement_problem(
    real: Path, root: Path, sources: tuple[Path, ...], output: Path | None = None
) -> str | None:
    """Why a folder kbgen writes (output or cache; real path) is in the wrong place, or None."""
    if real == Path(real.anchor):
        return "is the filesystem root"
    if real == Path.home().resolve():
        return "is your home folder"
    if real == root:
        return "is the project folder"
    if root.is_relative_to(real):
        return "is a parent of the project folder"
    named = [(source, "source folder") for source in sources]
    for folder, kind in named + ([(output, "output folder")] if output is not None else []):
        folder_real = folder.resolve()
        shown = f"the {kind} '{shown_path(folder_real, root)}'"
        if real == folder_real:
            return f"is {shown}"
        if real.is_relative_to(folder_real):
            return f"is inside {shown}"
        if folder_real.is_relative_to(real):
            return f"contains {shown}"
    return None


def _output_problem(real: Path, root: Path, sources: tuple[Path, ...]) -> str | None:
    """Why the (real) output folder is unsafe, or None."""
    problem = _placement_problem(real, root, sources)
    if problem is not None:
        return problem
    if real.exists() and not real.is_dir():
        return "exists and is not a folder"
    if (real / ".git").exists() or (real / ".git").is_symlink():
        # e.g. a gh-pages checkout kept in the output folder: its history is irreplaceable
        return "holds a .git repository, which the build would delete"
    if real.is_dir() and not (real / MARKER_FILE).is_file():
        try:
            non_empty = any(real.iterdir())
        except OSError:
            non_empty = True
        if non_empty:
            return f"is a non-empty folder that kbgen did not create (no {MARKER_FILE} marker file)"
    return None
