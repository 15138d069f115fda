"""Scratch restore target of a files drill: an empty directory under the drill's work dir."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from strongroom.sources.contract import ScratchTarget


@contextmanager
def scratch_directory(workdir: Path, prefix: str = "drill-files-") -> Iterator[ScratchTarget]:
    """An empty directory under ``workdir``, removed with everything in it on exit."""
    Path(workdir).mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=workdir))
    try:
        yield ScratchTarget(target=str(path), description=f"scratch directory {path}")
    finally:
        shutil.rmtree(path, ignore_errors=True)
