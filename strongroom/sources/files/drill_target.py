"""Scratch restore target of a files drill: a private directory under the drill's work dir."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from strongroom.sources.contract import ScratchTarget


@contextmanager
def scratch_directory(workdir: Path, prefix: str = "drill-files-") -> Iterator[ScratchTarget]:
    """An empty private (0700) directory inside a private directory under ``workdir``,
    removed with everything in it on exit. The outer one keeps the restored data private
    when the restore swaps in a root with the snapshot's own (wider) mode."""
    Path(workdir).mkdir(parents=True, exist_ok=True)
    outer = Path(tempfile.mkdtemp(prefix=prefix, dir=workdir))
    try:
        os.chmod(outer, 0o700)  # mkdtemp's mode, whatever the umask or platform
        path = outer / "target"
        path.mkdir(mode=0o700)
        os.chmod(path, 0o700)
        yield ScratchTarget(target=str(path), description=f"scratch directory {path}")
    finally:
        shutil.rmtree(outer, ignore_errors=True)
