"""Search stage: run Pagefind over the written site (before it is swapped in).

Input: the folder holding the complete rendered site (the staging folder).
Output: `<site>/pagefind/` (index, fragments, the search UI scripts).

Pagefind ships as a real static binary inside the `pagefind[bin]` wheel; we run its CLI once
over the whole folder (one `add_html_file` call per page through the Python API is ~100x
slower). Only elements inside `data-pagefind-body` are indexed; filters come from
`data-pagefind-filter` attributes in the templates.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path


class SearchIndexError(RuntimeError):
    """Pagefind is missing or failed; the build stops before swapping the site in."""


def pagefind_binary() -> Path | None:
    override = os.environ.get("PAGEFIND_BINARY_PATH")
    if override:
        return Path(override)
    try:
        import pagefind_bin  # type: ignore[import-untyped]  # the wheel carrying the binary
    except ImportError:
        found = shutil.which("pagefind")
        return Path(found) if found else None
    candidate = Path(pagefind_bin.__file__).parent / "pagefind"
    return candidate if candidate.is_file() else None


def index_site(site_dir: Path) -> None:
    binary = pagefind_binary()
    if binary is None:
        raise SearchIndexError(
            "the Pagefind binary was not found; install it with pip install 'pagefind[bin]' "
            "or set 'search: false' in config.yaml"
        )
    process = subprocess.run(
        [str(binary), "--site", str(site_dir), "--output-subdir", "pagefind", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if process.returncode != 0:
        raise SearchIndexError(
            f"Pagefind failed ({process.returncode}): "
            f"{(process.stderr or process.stdout).strip()[-2000:]}"
        )
