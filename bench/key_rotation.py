"""Time a data-key rotation (should not depend on the repository's size) and the
re-encryption of 1 GiB.

    python3 bench/key_rotation.py [--size-mib 1024] [--dir /dev/shm]

Random (incompressible) data, so every byte is stored; the repository lives in ``--dir``
(tmpfs by default: this times the CPU path, not a disk's write-back).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from strongroom.repository import Repository
from strongroom.repository.reencrypt import reencrypt, retire_epoch
from strongroom.repository.verify import verify

PASSWORD = "bench"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--dir", default="/dev/shm")
    args = parser.parse_args()
    os.environ.setdefault("STRONGROOM_ARGON2_MEMORY_KIB", "8192")
    work = Path(tempfile.mkdtemp(prefix="sr-bench-rotation-", dir=args.dir))
    try:
        small = Repository.init(str(work / "small"), PASSWORD)
        big = Repository.init(str(work / "big"), PASSWORD)
        started = time.perf_counter()
        with big.writer("bench", "files") as writer:
            for i in range(args.size_mib // 64):  # fresh random blocks: nothing deduplicates
                writer.add_bytes(f"f{i}", os.urandom(64 * 2**20))
            writer.commit()
        backup_s = time.perf_counter() - started
        stored = sum(p.stat().st_size for p in (work / "big" / "data").rglob("*")
                     if p.is_file())
        rotate = {}
        for name, repo in (("empty", small), (f"{args.size_mib} MiB", big)):
            runs = []
            for _ in range(5):
                t0 = time.perf_counter()
                repo.rotate_epoch()
                runs.append(time.perf_counter() - t0)
            rotate[name] = min(runs), max(runs)
        t0 = time.perf_counter()
        report = reencrypt(big)
        reencrypt_s = time.perf_counter() - t0
        retire_epoch(big, 1)
        t0 = time.perf_counter()
        ok = verify(Repository.open(str(work / "big"), PASSWORD), read_data=True).ok
        verify_s = time.perf_counter() - t0
        print(f"backup of {args.size_mib} MiB: {backup_s:.1f} s ({stored / 2**20:.0f} MiB "
              "stored)")
        for name, (lo, hi) in rotate.items():
            print(f"key rotate on a {name} repository: {lo * 1000:.1f}-{hi * 1000:.1f} ms")
        print(f"key rotate --reencrypt of {report.bytes_read / 2**20:.0f} MiB "
              f"({report.packs_rewritten} packs, verified before deletion): {reencrypt_s:.1f} s "
              f"= {report.bytes_read / 2**20 / reencrypt_s:.0f} MiB/s")
        print(f"verify --read-data after retiring epoch 1: {'ok' if ok else 'FAILED'} in "
              f"{verify_s:.1f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
