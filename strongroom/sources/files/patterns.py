"""Which paths a backup skips (``--exclude`` globs) and a restore writes (``--include``)."""

from __future__ import annotations

import fnmatch
import os


def excluded(path: str, patterns: list[str]) -> bool:
    """True when the name or the whole path of ``path`` matches one of the globs."""
    name = os.path.basename(path)
    return any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(path, p) for p in patterns)


def included(path: str, includes: list[str]) -> bool:
    """True when ``path`` (relative, in the snapshot) is, is inside, or leads to an include;
    everything is included when there are none."""
    if not includes:
        return True
    for inc in includes:
        inc = inc.strip("/")
        if not inc or path == inc or path.startswith(inc + "/") or inc.startswith(path + "/"):
            return True
    return False
