"""Scratch restore target of a PostgreSQL drill: a new data directory the restore recovers and
verifies on its own private server (a free loopback port and a socket of its own)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from strongroom.errors import NotSupported
from strongroom.sources.contract import ScratchTarget

if TYPE_CHECKING:
    from strongroom.repository import Snapshot


@contextmanager
def scratch_cluster(snap: Snapshot, workdir: Path) -> Iterator[ScratchTarget]:
    """Physical snapshots: ``<scratch>/data`` (absent; the restore creates it, starts a server
    on a free port, runs the verification and stops it); the scratch dir is removed on exit."""
    from strongroom.sources.postgres.cluster import free_port
    from strongroom.sources.postgres.pgbin import chown_tree, server_user_kwargs

    method = (snap.meta.get("postgres") or {}).get("method")
    if method != "physical":
        raise NotSupported(f"a drill of a {method or 'non-PostgreSQL'} snapshot needs a "
                           "scratch server: only physical PostgreSQL snapshots are drilled")
    Path(workdir).mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="drill-postgres-", dir=workdir))
    try:
        chown_tree(path, server_user_kwargs())
        os.chmod(path, 0o755)
        yield ScratchTarget(target=str(path / "data"),
                            description=f"scratch cluster {path / 'data'} on a free port",
                            options={"port": free_port()})
    finally:
        shutil.rmtree(path, ignore_errors=True)
