"""Who this host is: a random host id kept under the state directory, and this boot.

Host names are not unique (cloned VMs, containers with the same name), so locks and
snapshots record a random ``host_id`` beside the name. Whether a lock's pid can be checked
here at all depends on the running kernel, not on a name: only a lock written under this same
boot (``/proc/sys/kernel/random/boot_id``) and pid namespace names a pid this host can test.
"""

from __future__ import annotations

import functools
import os
import re
import secrets
from pathlib import Path

from strongroom.errors import ConfigError

_ID = re.compile(r"^[0-9a-zA-Z._-]{1,64}$")


def state_root() -> Path:
    """``$STRONGROOM_STATE_DIR``, else ``$XDG_STATE_HOME/strongroom``, else
    ``~/.local/state/strongroom``."""
    explicit = os.environ.get("STRONGROOM_STATE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "strongroom"


@functools.cache
def host_id() -> str:
    """``$STRONGROOM_HOST_ID``, else the id kept in ``<state>/host-id`` (made on first use),
    else (no writable state directory) an id for this process only."""
    given = os.environ.get("STRONGROOM_HOST_ID", "").strip()
    if given:
        if not _ID.match(given):
            raise ConfigError("a host id (--host-id, STRONGROOM_HOST_ID) must be 1-64 letters, "
                              "digits, '.', '_' or '-'")
        return given
    path = state_root() / "host-id"
    try:
        kept = path.read_text().strip()
        if _ID.match(kept):
            return kept
    except OSError:
        pass
    new = secrets.token_hex(8)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"host-id.{os.getpid()}.tmp")
        tmp.write_text(new + "\n")
        os.link(tmp, path)  # the first of two racing processes wins; the other reads it
        tmp.unlink()
    except FileExistsError:
        tmp.unlink(missing_ok=True)
        return path.read_text().strip()
    except OSError:
        pass
    return new


@functools.cache
def boot_id() -> str:
    """This kernel's boot id ('' where unknown)."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""
