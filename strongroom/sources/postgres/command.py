"""How PostgreSQL (running as its own OS user) calls back into strongroom."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

import strongroom


def strongroom_argv() -> list[str]:
    """The ``strongroom`` command: the installed script, else this interpreter."""
    script = os.environ.get("STRONGROOM_COMMAND") or shutil.which("strongroom")
    if script:
        return shlex.split(script)
    return [sys.executable, "-m", "strongroom.sources.postgres"]


def strongroom_shell() -> str:
    return " ".join(shlex.quote(a) for a in strongroom_argv())


def child_env() -> dict[str, str]:
    """Environment additions so a server child can import strongroom when not installed."""
    root = str(Path(strongroom.__file__).resolve().parent.parent)
    current = os.environ.get("PYTHONPATH", "")
    if root in current.split(os.pathsep):
        return {"PYTHONPATH": current}
    return {"PYTHONPATH": os.pathsep.join(p for p in (root, current) if p)}


def archive_command(name: str) -> str:
    """``archive_command`` value: ``strongroom pg wal-push %p --name NAME``."""
    return f"{strongroom_shell()} pg wal-push %p --name {shlex.quote(name)}"


def restore_command(name: str, spool: Path | None = None) -> str:
    """``restore_command`` value; with a spool, prefetched files are served by ``cp``."""
    fetch = f"{strongroom_shell()} pg wal-fetch %f %p --name {shlex.quote(name)}"
    if spool is None:
        return fetch
    sp = shlex.quote(str(spool))
    # A file missing from a complete spool is simply not archived: answer "not found" without
    # starting Python (which the server's OS user may not even be able to run).
    return (f"test -f {sp}/%f && cp {sp}/%f %p || "
            f"{{ test ! -f {sp}/.complete && {fetch} --spool {sp}; }}")
