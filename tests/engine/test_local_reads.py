"""Parallel range reads on the local backend return the bytes of the object asked for, even
while its descriptor cache is being recycled (restores read many packs from several threads);
a backend dropped without ``close()`` gives its cached descriptors back."""

from __future__ import annotations

import gc
import os
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


def test_a_dropped_backend_closes_its_cached_descriptors(tmp_path: Path) -> None:
    """A long-running process (a Prefect worker) opens a repository per flow run; a backend
    nobody closed must not keep its descriptors until the process hits its limit."""
    keys = [f"data/{i:02x}/{i:064x}" for i in range(40)]
    writer = LocalBackend(tmp_path / "store")
    for key in keys:
        writer.put(key, b"x" * 100)
    writer.close()
    gc.collect()
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(50):  # 50 repositories opened by 50 runs, read, never closed
        backend = LocalBackend(tmp_path / "store")
        for key in keys:
            assert backend.get_range(key, 10, 10) == b"x" * 10
        del backend
    gc.collect()
    assert len(os.listdir("/proc/self/fd")) <= before + 2
