"""The preview server's safety checks: request paths to files, and the Host/Origin checks.

Input: the output folder and a request's raw path; the bound address and the `Host` and
`Origin` headers. Output: a `Resolution` (the file to send, a redirect, or why not) and
yes/no answers. Pure functions over their arguments (the path check reads the file system),
so the security tests can call them directly as well as through a real server.

A dev server is still a server: request paths are decoded once, NUL, backslashes and encoded
separators are refused, the path is normalised and its real path (symlinks followed) must lie
inside the real output folder. Unexpected `Host` headers are refused (DNS rebinding: a page
on another site whose name resolves to 127.0.0.1 must not read this one), and so are
cross-origin event streams.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path
from typing import Literal
from urllib.parse import quote, unquote

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
#: `%2f` (/), `%5c` (\) and `%00` (NUL) smuggle separators past normalisation: always refused
ENCODED_SEPARATOR = re.compile(r"%(?:2f|5c|00)", re.IGNORECASE)


# --- request paths -> files ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Resolution:
    kind: Literal["file", "redirect", "missing", "forbidden", "bad"]
    file: Path | None = None  #: for "file": the real path, inside the output folder
    served_as: str = ""  #: for "file": the output-relative path with a leading "/"
    location: str = ""  #: for "redirect"


def resolve_request(root: Path, raw_path: str) -> Resolution:
    """Map a request path (without query) to a file inside `root`, or say why not.

    Decode once; refuse NUL, backslashes and encoded separators; normalise; follow symlinks
    and require the real path inside the real output folder. Hidden names (the `.kbgen-site`
    manifest) are not part of the site. A folder without a trailing slash redirects; a folder
    serves its index.html.
    """
    if not raw_path.startswith("/") or ENCODED_SEPARATOR.search(raw_path):
        return Resolution("bad")
    try:
        decoded = unquote(raw_path, errors="strict")
    except UnicodeDecodeError:
        return Resolution("bad")
    if "\x00" in decoded or "\\" in decoded:
        return Resolution("bad")
    normal = posixpath.normpath(decoded)
    parts = [part for part in normal.split("/") if part]
    if any(part.startswith(".") for part in parts):
        return Resolution("missing")
    try:
        real_root = root.resolve(strict=True)
        real = real_root.joinpath(*parts).resolve(strict=True)
    except (OSError, RuntimeError):  # missing, or a symlink loop
        return Resolution("missing")
    if not real.is_relative_to(real_root):
        return Resolution("forbidden")
    if real.is_dir():
        if not decoded.endswith("/"):
            return Resolution("redirect", location=quote("/".join(["", *parts, ""])))
        index = real / "index.html"
        try:
            real = index.resolve(strict=True)
        except (OSError, RuntimeError):
            return Resolution("missing")
        if not real.is_relative_to(real_root):
            return Resolution("forbidden")
        parts.append("index.html")
    if not real.is_file():
        return Resolution("missing")
    return Resolution("file", real, "/" + "/".join(parts))


# --- Host and Origin checks (DNS-rebinding defence) ----------------------------------------


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def allowed_hosts(bind_host: str, port: int) -> frozenset[str] | None:
    """`Host` header values accepted; None (no check) when the user bound another address."""
    if not is_loopback(bind_host):
        return None
    names = {*LOOPBACK_NAMES, url_host(bind_host)}
    hosts = {f"{name}:{port}" for name in names}
    if port == 80:
        hosts |= names
    return frozenset(hosts)


def host_allowed(header: str | None, allowed: frozenset[str] | None) -> bool:
    if allowed is None:
        return True
    return header is not None and header.strip().lower() in allowed


def origin_allowed(origin: str | None, host_header: str | None) -> bool:
    """Event streams are same-origin only; no Origin (same-origin GET, curl) is fine."""
    if origin is None:
        return True
    return host_header is not None and origin.lower() == f"http://{host_header.strip().lower()}"
