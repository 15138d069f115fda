"""Build test trees with every kind of metadata, and describe trees for exact comparison."""

from __future__ import annotations

import hashlib
import os
import random
import stat
from pathlib import Path
from typing import Any


def make_tree(root: Path, files: int = 60, seed: int = 1, big: int = 3_000_000) -> Path:
    """Nested dirs, empty dir, 0-byte/small/big files, symlinks, a hard link, odd modes,
    nanosecond mtimes, and foreign ownership when running as root."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "empty-dir").mkdir()
    (root / "a" / "b" / "c").mkdir(parents=True)
    (root / "zero.bin").write_bytes(b"")
    (root / "big.bin").write_bytes(rng.randbytes(big))
    (root / "text.log").write_bytes(b"line of log text\n" * 50_000)
    for i in range(files):
        sub = root / ["a", "a/b", "a/b/c", "."][i % 4]
        (sub / f"file-{i:03}.dat").write_bytes(rng.randbytes(rng.randint(1, 40_000)))
    os.symlink("a/b/file-001.dat", root / "link-rel")
    os.symlink("/nonexistent/target", root / "link-dangling")
    os.link(root / "big.bin", root / "a" / "big-hardlink.bin")
    secret = root / "a" / "secret.key"
    secret.write_bytes(b"private")
    secret.chmod(0o600)
    tool = root / "a" / "tool.sh"
    tool.write_bytes(b"#!/bin/sh\necho hi\n")
    tool.chmod(0o755)
    (root / "a" / "b").chmod(0o750)
    if os.geteuid() == 0:
        os.chown(secret, 1234, 5678)
        os.lchown(root / "link-rel", 4321, 8765)
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames + dirnames:
            p = Path(dirpath) / name
            t = 1_600_000_000_123_456_789 + rng.randint(0, 10**15)
            os.utime(p, ns=(t, t), follow_symlinks=False)
    os.utime(root, ns=(1_600_000_000_000_000_001,) * 2)
    return root


def describe(root: Path) -> dict[str, Any]:
    """Everything a restore must reproduce: type, mode, mtime, size, content, target,
    ownership and hard-link grouping, by relative path."""
    out: dict[str, Any] = {}
    inodes: dict[int, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            st = os.lstat(p)
            rel = str(p.relative_to(root))
            entry: dict[str, Any] = {"mode": stat.S_IMODE(st.st_mode), "uid": st.st_uid,
                                     "gid": st.st_gid}
            if stat.S_ISLNK(st.st_mode):
                entry.update(type="symlink", target=os.readlink(p), mtime=st.st_mtime_ns)
            elif stat.S_ISDIR(st.st_mode):
                entry.update(type="dir", mtime=st.st_mtime_ns)
            else:
                entry.update(type="file", mtime=st.st_mtime_ns, size=st.st_size,
                             sha256=hashlib.sha256(p.read_bytes()).hexdigest())
                if st.st_nlink > 1:
                    entry["link_group"] = inodes.setdefault(st.st_ino, rel)
            out[rel] = entry
    return out
