"""Small repositories and snapshots for the storage-tier tests."""

from __future__ import annotations

import io
import random
import subprocess
from typing import Any

from strongroom.repository import Repository, Snapshot

PASSWORD = "tiers test password"
SMALL_PACK = 256 * 1024


def new_repo(url: str, password: str = PASSWORD, options: dict[str, Any] | None = None,
             pack_target: int = SMALL_PACK) -> Repository:
    return Repository.init(url, password=password, options=options, pack_target=pack_target)


def open_repo(url: str, password: str = PASSWORD,
              options: dict[str, Any] | None = None) -> Repository:
    return Repository.open(url, password=password, options=options)


def random_files(seed: int, count: int = 6, size: int = 120_000) -> dict[str, bytes]:
    rng = random.Random(seed)
    return {f"dir{i % 2}/f{i:02}.bin": rng.randbytes(rng.randint(size // 2, size))
            for i in range(count)}


def backup(repo: Repository, files: dict[str, bytes], source: str = "app",
           kind: str = "full", tags: tuple[str, ...] = (), parent: Snapshot | None = None
           ) -> Snapshot:
    with repo.writer(source_name=source, source_kind="files", kind=kind, tags=list(tags),
                     parent=parent) as w:
        for path, data in sorted(files.items()):
            w.add_stream(path, io.BytesIO(data), mtime_ns=1_700_000_000_000_000_000)
        return w.commit()


def read_all(repo: Repository, snap: Snapshot) -> dict[str, bytes]:
    reader = repo.reader(snap)
    return {path: reader.read_bytes(path) for path, node in reader.walk() if node.type == "file"}


def leftover_pack(repo: Repository, data: bytes) -> None:
    """Store a pack no index names, as a backup killed before its index would leave."""
    from strongroom.repository.format import blob_id, seal_blob
    from strongroom.repository.packs import PackWriter

    writer = PackWriter(repo.backend, repo.aead, lambda *_: None, repo.pack_target)
    bid = blob_id(repo.id_key, data)
    writer.add("D", bid, seal_blob(repo.aead, "D", bid, data), len(data))
    writer.flush()
    writer.close()


def run(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """``strongroom ARGS`` with ``env``; with ``check``, an AssertionError showing its output
    when it fails."""
    proc = subprocess.run(["strongroom", *args], env=env, capture_output=True, text=True,
                          timeout=180)
    if check and proc.returncode != 0:
        raise AssertionError(f"strongroom {' '.join(args)} -> {proc.returncode}\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc
