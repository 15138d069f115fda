"""PostgreSQL binaries: finding them, running them with timeouts, as the right OS user."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from strongroom.errors import ConfigError, SourceError
from strongroom.sources.postgres.faults import source_error

PG_ROOT = Path(os.environ.get("STRONGROOM_PG_ROOT", "/usr/lib/postgresql"))
SERVER_USER = os.environ.get("STRONGROOM_PG_USER", "postgres")


def bindir(version: int | str | None = None) -> Path:
    """The bin directory of PostgreSQL ``version`` (default: the newest installed)."""
    if os.environ.get("STRONGROOM_PG_BINDIR"):
        return Path(os.environ["STRONGROOM_PG_BINDIR"])
    if version is not None:
        path = PG_ROOT / str(version) / "bin"
        if path.is_dir():
            return path
    found = sorted((p for p in PG_ROOT.glob("*/bin") if p.parent.name.isdigit()),
                   key=lambda p: int(p.parent.name))
    if version is not None:
        newer = [p for p in found if int(p.parent.name) >= int(version)]
        if newer:
            return newer[0]
    if not found:
        which = shutil.which("pg_basebackup")
        if which:
            return Path(which).parent
        raise ConfigError(f"no PostgreSQL binaries under {PG_ROOT} (install postgresql-client)")
    return found[-1]


def binary(name: str, version: int | str | None = None) -> str:
    path = bindir(version) / name
    if not path.exists():
        raise ConfigError(f"PostgreSQL binary {name} not found in {path.parent}")
    return str(path)


def server_user_kwargs(owner_of: Path | None = None) -> dict[str, Any]:
    """Popen kwargs that drop root to the owner of ``owner_of`` (or ``postgres``); server
    binaries refuse to run as root."""
    if os.geteuid() != 0:
        return {}
    if owner_of is not None and owner_of.exists() and owner_of.stat().st_uid != 0:
        entry = pwd.getpwuid(owner_of.stat().st_uid)
    else:
        try:
            entry = pwd.getpwnam(SERVER_USER)
        except KeyError:
            raise ConfigError(f"running as root needs the OS user {SERVER_USER!r} to run "
                              "PostgreSQL server binaries") from None
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def chown_tree(path: Path, like: dict[str, Any]) -> None:
    """Give ``path`` and everything under it to the user of ``like`` (server_user_kwargs)."""
    if not like:
        return
    uid, gid = like["user"], like["group"]
    os.chown(path, uid, gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), uid, gid)


def run(args: Sequence[str], *, timeout: float, env: dict[str, str] | None = None,
        what: str = "", check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a binary to completion with a timeout; failures become SourceError with the last
    line of its stderr (which never contains passwords: those go through the environment),
    SourceUnreachable when that says the server is down, out of reach or restarting."""
    name = what or Path(args[0]).name
    try:
        proc = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout,
                              env=env, **kwargs)
    except subprocess.TimeoutExpired:
        raise SourceError(f"{name} did not finish within {timeout:.0f} s") from None
    except OSError as exc:
        raise SourceError(f"cannot run {name}: {exc.strerror}") from None
    if check and proc.returncode != 0:
        raise source_error(f"{name} failed: "
                           f"{last_error(proc.stderr) or f'exit {proc.returncode}'}", proc.stderr)
    return proc


def widen_pipe(pipe: Any) -> None:
    """A 1 MiB pipe instead of 64 KiB: fewer wake-ups between a tool and us (Linux)."""
    try:
        import fcntl

        fcntl.fcntl(pipe.fileno(), 1031, 1 << 20)  # F_SETPIPE_SZ
    except (OSError, ImportError, AttributeError):
        pass


def last_error(stderr: str) -> str:
    """The most telling line of a PostgreSQL tool's stderr."""
    lines = [ln.strip() for ln in (stderr or "").splitlines() if ln.strip()]
    for ln in reversed(lines):
        if any(w in ln for w in ("error:", "FATAL", "ERROR", "fatal:", "could not")):
            return ln
    return lines[-1] if lines else ""
