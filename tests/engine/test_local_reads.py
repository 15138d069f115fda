"""Parallel range reads on the local backend return the bytes of the object asked for, even
while its descriptor cache is being recycled (restores read many packs from several threads)."""

from __future__ import annotations

import random
import threading
from pathlib import Path

from strongroom.errors import StrongroomError
from strongroom.storage.local import LocalBackend


def test_parallel_get_range_over_many_objects(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "store")
    keys = [f"data/{i:02x}/{i:064x}" for i in range(200)]  # more than the descriptor cache
    for key in keys:
        backend.put(key, key.encode() * 20)
    problems: list[str] = []

    def reader(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(3000):
            key = rng.choice(keys)
            try:
                got = backend.get_range(key, len(key), len(key))
            except StrongroomError as exc:
                problems.append(f"{key}: {exc}")
                continue
            if got != key.encode():
                problems.append(f"{key}: read bytes of another object: {got[:24]!r}")

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    backend.close()
    assert problems == []
