"""The import layering of kbgen (ARCHITECTURE.md §7.2), enforced by an ast scan.

A module may import only kbgen modules from lower layers, and third-party libraries only
where they are confined (so an upgrade touches one module).
"""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

LAYERS = [
    {"__init__", "environment", "model", "diagnostics", "links"},
    {"yamlload", "inline"},
    {"config"},
    {"discover", "frontmatter", "markup", "citations", "glossary"},
    {"cache"},
    {"load", "resolve"},
    {"deps"},
    {"render"},
    {"write", "search", "readability"},
    {"pipeline"},
    {"watch"},
    {"serve"},
    {"cli"},
    {"__main__"},
]
THIRD_PARTY = {
    # cache.py reads these libraries' versions for its cache key
    "markdown": {"markup", "inline", "cache"},
    "pygments": {"markup", "cache"},
    "nh3": {"markup", "cache"},
    "jinja2": {"render", "diagnostics"},
    "yaml": {"yamlload", "config", "frontmatter", "citations", "glossary", "diagnostics"},
    "watchdog": {"watch"},
    "pagefind": {"search"},
    "pagefind_bin": {"search"},
}


def _layer(module: str) -> int:
    for number, members in enumerate(LAYERS):
        if module in members:
            return number
    raise AssertionError(f"kbgen/{module}.py is not assigned to a layer in test_architecture.py")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            if node.module == "kbgen":  # `from kbgen import links` names modules too
                names.update(f"kbgen.{alias.name}" for alias in node.names
                             if (REPO / "kbgen" / f"{alias.name}.py").exists())
    return names


def test_modules_import_only_lower_layers_and_confined_libraries() -> None:
    problems = []
    for path in sorted((REPO / "kbgen").glob("*.py")):
        module = path.stem
        own_layer = _layer(module)
        for name in _imports(path):
            top = name.split(".")[0]
            if top == "kbgen" and "." in name:
                imported = name.split(".")[1]
                if imported != "__init__" and _layer(imported) >= own_layer and imported != module:
                    problems.append(f"{module} imports {imported} (same or higher layer)")
            elif top in THIRD_PARTY and module not in THIRD_PARTY[top]:
                problems.append(f"{module} imports {top} (allowed only in {THIRD_PARTY[top]})")
    assert problems == []


def test_every_module_has_a_docstring() -> None:
    for path in (REPO / "kbgen").glob("*.py"):
        assert ast.get_docstring(ast.parse(path.read_text("utf-8"))), path.name
