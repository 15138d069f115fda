"""Scratch restore target of a Redis drill: a private redis-server on a free loopback port."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from strongroom.sources.contract import ScratchTarget
from strongroom.sources.redis.proc import RedisProcess

if TYPE_CHECKING:
    from strongroom.repository import Snapshot


@contextmanager
def scratch_server(snap: Snapshot, workdir: Path) -> Iterator[ScratchTarget]:
    """An empty redis-server (random password, as many databases as the snapshot's server)
    restored into live; stopped and its directory removed on exit."""
    Path(workdir).mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="drill-redis-", dir=workdir))
    databases = max(int(snap.meta.get("databases", 16) or 16), 16)
    proc = RedisProcess(path, settings={"databases": str(databases)})
    try:
        proc.start()
        # the scratch server's own credentials replace the source block's (never shown)
        yield ScratchTarget(target=f"redis://127.0.0.1:{proc.port}",
                            description=f"scratch redis-server on 127.0.0.1:{proc.port}",
                            options={"username": "default", "password": proc.password,
                                     "mode": "live"})
    finally:
        proc.stop()
        shutil.rmtree(path, ignore_errors=True)
