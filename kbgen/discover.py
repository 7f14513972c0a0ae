"""Walk the project's source folders -> `SourceTree`.

Input: `Config` (content/, static/, templates/ folders; the output folder to skip).
Output: the content pages, data files, static files and templates found, plus diagnostics for
files that can never build (a symlink leaving the project, a page outside any section).
Dotfiles, editor temp files (vim `.swp`/`~`/`4913`, emacs `.#*`, JetBrains `___jb_tmp___`)
and the output/cache folders are ignored. Symlinked folders are not followed (no loops).
Only regular files are returned: a FIFO, socket or device named `x.md` is an error here, since
reading it would block the build or never end.
"""

from __future__ import annotations

import errno
import os
import stat
import unicodedata
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from kbgen.config_sections import RESERVED_SECTION_IDS
from kbgen.config_types import Config
from kbgen.diagnostics import Diagnostic, did_you_mean, error, warning

DATA_FILES = ("references.yaml", "glossary.yaml", "timeline.yaml")


def is_ignored_name(name: str) -> bool:
    """Hidden files and the temp files editors write while saving."""
    return (
        name.startswith(".")
        or name.endswith(("~", ".swp", ".swx", ".swo", ".tmp", "___jb_tmp___", "___jb_old___"))
        or name == "4913"
        or (name.startswith("#") and name.endswith("#"))
    )


@dataclass(frozen=True, slots=True)
class SourceFile:
    rel: str  #: relative to its source folder, POSIX
    path: Path  #: absolute path
    shown: str  #: project-relative path for messages


@dataclass(frozen=True, slots=True)
class SourceTree:
    pages: tuple[SourceFile, ...]  #: content/**/*.md, sorted
    data: dict[str, SourceFile]  #: "references.yaml", "glossary.yaml", "timeline.yaml" -> file
    static: tuple[SourceFile, ...]
    templates: tuple[SourceFile, ...]


def _walk(
    folder: Path, config: Config, diagnostics: list[Diagnostic], check_escape: bool
) -> list[SourceFile]:
    """Every file under `folder`, depth first, sorted by name within each folder.

    Uses `os.scandir`, whose entries know their type without a `stat` call, because this
    runs on every build and every save in `serve`: a 10,000-page site must not pay four
    system calls and several `Path` parses per file just to be listed.
    """
    found: list[SourceFile] = []
    if not folder.is_dir():
        return found
    skip = {config.output_dir.resolve(), config.cache_dir.resolve()}
    shown_root = config.rel(folder)
    _walk_folder(folder, "", shown_root, skip, config, diagnostics, check_escape, found)
    return found


def _walk_folder(
    current: Path,
    prefix: str,
    shown_root: str,
    skip: set[Path],
    config: Config,
    diagnostics: list[Diagnostic],
    check_escape: bool,
    found: list[SourceFile],
) -> None:
    try:
        with os.scandir(current) as listing:
            entries = sorted(listing, key=lambda entry: entry.name)
    except OSError:
        return  # unreadable or gone since it was listed: like os.walk, skip it
    folders: list[str] = []
    for entry in entries:
        name = entry.name
        if is_ignored_name(name):
            continue
        try:
            is_folder = entry.is_dir()  # through symlinks, as os.walk classifies entries
        except OSError:
            is_folder = False
        if is_folder:
            if name == "__pycache__" or (current / name).resolve() in skip:
                continue
            if entry.is_symlink():
                diagnostics.append(
                    warning(
                        config.rel(current / name),
                        None,
                        None,
                        "symlinked folder is not followed",
                        "copy the folder in, or move the real folder here",
                    )
                )
                continue
            if check_escape and name.endswith(".md"):
                diagnostics.append(
                    error(
                        config.rel(current / name),
                        None,
                        None,
                        f"'{name}' is a folder, not a Markdown file",
                        "rename the folder (a page is a file content/<section>/<slug>.md)",
                    )
                )
            folders.append(name)
            continue
        path = current / name
        symlink = entry.is_symlink()
        try:
            regular = entry.is_file()  # no system call unless it is a symlink
        except OSError:
            regular = False
        if not regular and not _is_regular_file(path, config, diagnostics):
            continue
        if check_escape and symlink:
            try:
                real = path.resolve(strict=True)
            except (OSError, RuntimeError) as exc:
                diagnostics.append(_bad_symlink(path, exc, config))
                continue
            if not real.is_relative_to(config.root):
                diagnostics.append(
                    error(
                        config.rel(path),
                        None,
                        None,
                        f"symlink points outside the project (to '{real}'); it is not copied",
                        "copy the file into the project instead of linking to it",
                    )
                )
                continue
        rel = prefix + name
        found.append(SourceFile(rel, path, rel if shown_root == "." else f"{shown_root}/{rel}"))
    for name in folders:
        _walk_folder(
            current / name,
            f"{prefix}{name}/",
            shown_root,
            skip,
            config,
            diagnostics,
            check_escape,
            found,
        )


def _bad_symlink(path: Path, exc: Exception, config: Config) -> Diagnostic:
    """A symlink that resolves to nothing: a loop, or a target that does not exist."""
    try:
        target = os.readlink(path)
    except OSError:  # pragma: no cover - it was a symlink a moment ago
        target = "?"
    looping = isinstance(exc, RuntimeError) or getattr(exc, "errno", None) == errno.ELOOP
    message = (
        f"symlink loop: '{path.name}' -> '{target}' leads back to itself"
        if looping
        else f"broken symlink: '{path.name}' -> '{target}', which does not exist"
    )
    return error(
        config.rel(path), None, None, message, "remove the link or point it at a real file"
    )


def _is_regular_file(path: Path, config: Config, diagnostics: list[Diagnostic]) -> bool:
    """True for a regular file (through symlinks); other kinds get a diagnostic.

    Broken and looping symlinks are left to the symlink check, which names them.
    """
    try:
        mode = path.stat().st_mode
    except OSError:
        return path.is_symlink()
    if stat.S_ISREG(mode):
        return True
    kind = (
        "a named pipe (FIFO)"
        if stat.S_ISFIFO(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "a device"
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        else "not a regular file"
    )
    diagnostics.append(
        error(
            config.rel(path),
            None,
            None,
            f"'{path.name}' is {kind}, not a regular file; it cannot be read",
            "replace it with a regular file or remove it",
        )
    )
    return False


def _top_level_page_problem(source: SourceFile, section_ids: list[str]) -> Diagnostic | None:
    """Why a top-level `content/<name>.md` cannot be a standalone page at `/<name>/`.

    Its URL is its file name, so the name must not be a section's folder or a generated
    route (tags, glossary, ...), which would claim the same URL.
    """
    name = source.rel[: -len(".md")]
    if name == "_index":
        return error(
            source.shown,
            None,
            None,
            "content/_index.md is not a page (section intros live in content/<section>/)",
            "rename it to content/index.md for the home page, or move it into a section",
        )
    if name in section_ids:
        return error(
            source.shown,
            None,
            None,
            f"the page '{source.rel}' would have the URL of the section '{name}'",
            f"rename it, or move it to content/{name}/_index.md as the section's intro",
        )
    if name in RESERVED_SECTION_IDS or name == "404":
        return error(
            source.shown,
            None,
            None,
            f"the page '{source.rel}' would have the URL of the generated '{name}' pages",
            "rename the file",
        )
    return None


def _normalisation_twins(pages: list[SourceFile]) -> list[Diagnostic]:
    """Pages whose names are one name in two Unicode forms (an NFC and an NFD `café.md`,
    as macOS and Linux can each create): they look the same in every listing."""
    by_form: dict[str, list[SourceFile]] = {}
    for page in pages:
        by_form.setdefault(unicodedata.normalize("NFC", page.rel), []).append(page)
    problems = []
    for twins in by_form.values():
        for page in twins[1:]:
            forms = " and ".join(_form(twin.rel) for twin in twins)
            problems.append(
                error(
                    page.shown,
                    None,
                    None,
                    f"{len(twins)} files have this name, written in different Unicode forms "
                    f"({forms}); they look the same but are different files",
                    "keep one of them: delete or rename the others",
                )
            )
    return problems


def _form(name: str) -> str:
    return "NFC" if unicodedata.is_normalized("NFC", name) else (
        "NFD" if unicodedata.is_normalized("NFD", name) else "mixed"
    )


def scan(config: Config) -> tuple[SourceTree, list[Diagnostic]]:
    diagnostics: list[Diagnostic] = []
    content = _walk(config.content_dir, config, diagnostics, check_escape=True)
    pages: list[SourceFile] = []
    data: dict[str, SourceFile] = {}
    section_ids = [s.id for s in config.sections]
    for source in content:
        parts = PurePosixPath(source.rel).parts
        if len(parts) == 1 and source.rel in DATA_FILES:
            data[source.rel] = source
        elif not source.rel.endswith(".md"):
            if source.rel.lower().endswith(".md"):  # X.MD, y.Md: meant as a page
                name = parts[-1]
                diagnostics.append(
                    error(
                        source.shown,
                        None,
                        None,
                        f"'{name}' ends in '{name[-3:]}', not '.md', so it is not read as a page",
                        f"rename it to '{name[:-3]}.md'",
                    )
                )
            continue  # images and other assets beside the articles are not pages
        elif len(parts) == 1 and source.rel != "index.md":
            problem = _top_level_page_problem(source, section_ids)
            if problem is None:
                pages.append(source)  # a standalone page such as content/about.md
            else:
                diagnostics.append(problem)
        elif len(parts) > 2:
            diagnostics.append(
                error(
                    source.shown,
                    None,
                    None,
                    "articles live exactly one level deep: content/<section>/<slug>.md",
                    f"move it to content/{parts[0]}/{parts[-1]}",
                )
            )
        elif len(parts) == 2 and parts[0] not in section_ids:
            hint = (
                did_you_mean(parts[0], section_ids)
                or f"declare a section with id '{parts[0]}' in config.yaml, or move the file"
            )
            diagnostics.append(
                error(
                    source.shown,
                    None,
                    None,
                    f"section '{parts[0]}' is not declared in config.yaml",
                    hint,
                )
            )
        else:
            pages.append(source)
    diagnostics += _normalisation_twins(pages)
    static = _walk(config.static_dir, config, diagnostics, check_escape=True)
    templates = _walk(config.templates_dir, config, diagnostics, check_escape=False)
    return SourceTree(tuple(pages), data, tuple(static), tuple(templates)), diagnostics
