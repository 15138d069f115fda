"""Files fidelity: what a bare-metal or /etc restore needs comes back identical.

A generated tree holds every property (owners incl. root:shadow, setuid/setgid/sticky, user,
trusted and security extended attributes incl. a file capability, access and default POSIX
ACLs, a sparse image and a dense file of zeros, a fifo, character and block devices, hard
links, nanosecond mtimes of files, directories and symlinks); it is backed up to a local and an
S3 repository, restored, and compared with an independent ``lstat``/``listxattr`` walk.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import random
import secrets
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from strongroom.repository import Node, Repository
from strongroom.repository.writer import SnapshotWriter
from strongroom.sources import registry
from strongroom.sources.files import meta as files_meta
from strongroom.sources.files.meta import MetaApplier
from strongroom.sources.files.sparse import find_holes, write_sparse

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="devices and foreign owners: root")

REPO_ROOT = Path(__file__).resolve().parents[2]
NOBODY = 65534
MiB = 1 << 20

# POSIX ACL xattr form (linux/posix_acl_xattr.h): version 2, then (tag u16, perm u16, id u32)
_USER_OBJ, _USER, _GROUP_OBJ, _GROUP, _MASK, _OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
_NO_ID = 0xFFFFFFFF


def _acl(*entries: tuple[int, int, int]) -> bytes:
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)


ACL_FILE = _acl((_USER_OBJ, 6, _NO_ID), (_USER, 4, 1000), (_GROUP_OBJ, 4, _NO_ID),
                (_GROUP, 6, 100), (_MASK, 6, _NO_ID), (_OTHER, 0, _NO_ID))
ACL_DIR = _acl((_USER_OBJ, 7, _NO_ID), (_USER, 5, 1000), (_GROUP_OBJ, 5, _NO_ID),
               (_MASK, 5, _NO_ID), (_OTHER, 0, _NO_ID))
# security.capability, VFS_CAP_REVISION_2 with the effective flag: cap_net_raw (13) like ping
CAP_NET_RAW = struct.pack("<IIIII", 0x02000001, 1 << 13, 0, 0, 0)


def build_tree(root: Path, sparse_size: int = 200 * MiB) -> Path:
    """Every property a restore must keep, in a fresh directory ``root``."""
    rng = random.Random(12)
    root.mkdir(parents=True)
    for d in ("etc", "bin", "data", "dev", "run"):
        (root / d).mkdir()
    shadow = root / "etc" / "shadow"
    shadow.write_bytes(b"root:*:19000:0:99999:7:::\n")
    os.chown(shadow, 0, 42)  # root:shadow, the case that came back root:root
    shadow.chmod(0o640)
    (root / "etc" / "passwd").write_bytes(b"root:x:0:0:root:/root:/bin/sh\n")
    foreign = root / "data" / "foreign.dat"  # numbers with no name on this host
    foreign.write_bytes(rng.randbytes(5000))
    os.chown(foreign, 1234, 5678)
    mine = root / "data" / "nobody.dat"
    mine.write_bytes(b"nobody's")
    os.chown(mine, NOBODY, NOBODY)
    for name, gid, mode in (("su", 0, 0o4755), ("wall", 5, 0o2755), ("both", 0, 0o6711)):
        tool = root / "bin" / name
        tool.write_bytes(b"\x7fELF" + rng.randbytes(300))
        os.chown(tool, 0, gid)
        tool.chmod(mode)  # after chown, which clears setuid/setgid
    ping = root / "bin" / "ping"
    ping.write_bytes(b"\x7fELF ping")
    ping.chmod(0o755)
    os.setxattr(ping, "security.capability", CAP_NET_RAW)
    (root / "tmp").mkdir()
    (root / "tmp").chmod(0o1777)
    shared = root / "shared"
    shared.mkdir()
    os.chown(shared, 0, 100)
    shared.chmod(0o2775)
    note = root / "data" / "x.txt"
    note.write_bytes(b"extended")
    os.setxattr(note, "user.comment", b"hello")
    os.setxattr(note, "user.binary", bytes(range(256)))
    os.setxattr(note, "trusted.secret", b"t" * 100)
    os.setxattr(root / "data", "user.dirnote", b"a directory's attribute")
    link = root / "data" / "link"
    os.symlink("x.txt", link)
    os.setxattr(link, "trusted.link", b"on the link itself", follow_symlinks=False)
    os.lchown(link, 4321, 8765)
    os.symlink("/nonexistent/target", root / "data" / "dangling")
    acl_file = root / "data" / "acl.txt"
    acl_file.write_bytes(b"acl")
    os.setxattr(acl_file, "system.posix_acl_access", ACL_FILE)
    acl_dir = root / "data" / "acldir"
    acl_dir.mkdir()
    os.setxattr(acl_dir, "system.posix_acl_access", ACL_DIR)
    os.setxattr(acl_dir, "system.posix_acl_default", ACL_DIR)
    (acl_dir / "inherits.txt").write_bytes(b"created under a default ACL")
    image = root / "disk.img"  # holes at both ends, one block of data in the middle
    with open(image, "wb") as fh:
        fh.truncate(sparse_size)
        fh.seek(sparse_size // 2)
        fh.write(rng.randbytes(4096))
    (root / "zeros.bin").write_bytes(bytes(MiB))  # dense: written zeros stay written
    os.mkfifo(root / "run" / "fifo", 0o620)
    os.mknod(root / "dev" / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.mknod(root / "dev" / "loop9", 0o660 | stat.S_IFBLK, os.makedev(7, 9))
    os.chown(root / "dev" / "loop9", 0, 6)
    (root / "data" / "a.txt").write_bytes(b"hard linked")
    os.link(root / "data" / "a.txt", root / "etc" / "a-link")
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in [*filenames, *dirnames, ""]:
            p = Path(dirpath) / name if name else Path(dirpath)
            mtime = 1_600_000_000_123_456_789 + rng.randint(0, 10**15)
            os.utime(p, ns=(mtime, mtime), follow_symlinks=False)
    return root


def _sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def describe(root: Path) -> dict[str, dict[str, Any]]:
    """Every property of every entry under ``root`` (itself included), from lstat and
    listxattr, independent of strongroom's code."""
    out: dict[str, dict[str, Any]] = {}
    first_of_inode: dict[int, str] = {}
    paths = [root]
    for dirpath, dirnames, filenames in os.walk(root):
        paths += [Path(dirpath) / n for n in sorted(dirnames + filenames)]
    for p in paths:
        st = os.lstat(p)
        rel = str(p.relative_to(root))
        entry: dict[str, Any] = {
            "type": stat.S_IFMT(st.st_mode), "mode": oct(stat.S_IMODE(st.st_mode)),
            "uid": st.st_uid, "gid": st.st_gid, "mtime_ns": st.st_mtime_ns,
            "xattrs": {n: os.getxattr(p, n, follow_symlinks=False)
                       for n in os.listxattr(p, follow_symlinks=False)}}
        if stat.S_ISREG(st.st_mode):
            entry |= {"size": st.st_size, "sha256": _sha256(p)}
            if st.st_nlink > 1:
                entry["link_group"] = first_of_inode.setdefault(st.st_ino, rel)
        elif stat.S_ISLNK(st.st_mode):
            entry["target"] = os.readlink(p)
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            entry["rdev"] = (os.major(st.st_rdev), os.minor(st.st_rdev))
        out[rel] = entry
    return out


@pytest.fixture(params=["local", "s3"])
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Repository:
    if request.param == "local":
        return Repository.init(str(tmp_path / "repo"), password="pw")
    endpoint = request.getfixturevalue("moto_endpoint")
    bucket = request.getfixturevalue("s3_bucket")
    return Repository.init(f"s3://{bucket}/fidelity", password="pw",
                           options={"endpoint": endpoint})


def _backup(repo: Repository, src: Path, kind: str = "full"):  # noqa: ANN202
    return registry.get("files").backup(repo, name="fidelity", kind=kind, tags=[],
                                        settings={"paths": [str(src)]})


def _restore(repo: Repository, snap, dest: Path, **options: Any) -> dict[str, Any]:  # noqa: ANN001
    return registry.get("files").restore(repo, snap, str(dest), replace=False, include=[],
                                         options=options)


def test_every_property_round_trips(repo: Repository, tmp_path: Path) -> None:
    src = build_tree(tmp_path / "src")
    before = describe(src)
    snap = _backup(repo, src)
    assert "skipped_special" not in snap.meta and "errors" not in snap.meta
    # an incremental run reuses unchanged nodes and must keep every property too
    snap = _backup(repo, src, kind="incremental")
    assert describe(src) == before  # reading the tree changed nothing
    dest = tmp_path / "dest"
    report = _restore(repo, snap, dest, keep_setuid=True)  # not in place: bits kept on request
    assert not [k for k in report if k.startswith("not_restored")]
    back = dest / str(src).lstrip("/")
    after = describe(back)
    assert after.keys() == before.keys()
    for rel in before:
        assert after[rel] == before[rel], rel
    assert after["etc/shadow"]["gid"] == 42 and after["etc/shadow"]["uid"] == 0
    image, zeros = os.lstat(back / "disk.img"), os.lstat(back / "zeros.bin")
    assert image.st_size == 200 * MiB and image.st_blocks * 512 <= 64 * 1024  # ~1 block
    assert zeros.st_blocks * 512 >= MiB  # a dense file stays dense
    checked = registry.get("files").verify_restored(repo, snap, str(dest), include=[],
                                                    report=report)
    assert checked["files"] == checked["files_identical"]


@pytest.fixture
def work() -> Iterator[Path]:
    """A directory that user nobody can reach (pytest's tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="strongroom-fidelity-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_restore_as_nobody_keeps_what_it_can(work: Path) -> None:
    src = build_tree(work / "src", sparse_size=8 * MiB)
    before = describe(src)
    repo = Repository.init(str(work / "repo"), password="pw")
    snap = _backup(repo, src)
    dest, home = work / "dest", work / "home"
    for d in (dest, home):
        d.mkdir()
    subprocess.run(["chown", "-R", f"{NOBODY}:{NOBODY}", str(work / "repo"), str(dest),
                    str(home)], check=True)
    script = (
        "import json, sys\n"
        "from strongroom.repository import Repository\n"
        "from strongroom.sources import registry\n"
        "repo = Repository.open(sys.argv[1], password='pw')\n"
        "snap = repo.find_snapshot(sys.argv[2])\n"
        "report = registry.get('files').restore(repo, snap, sys.argv[3], replace=False,\n"
        "                                       include=[], options={'keep_setuid': True})\n"
        "print(json.dumps(report))\n")

    def as_nobody() -> None:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)

    env = dict(os.environ, HOME=str(home), PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.run([sys.executable, "-c", script, str(work / "repo"), snap.id,
                           str(dest)], preexec_fn=as_nobody, env=env, cwd=home,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    missing = {k.removeprefix("not_restored_"): v for k, v in report.items()
               if k.startswith("not_restored_")}
    assert set(missing) == {"owner", "devices", "capabilities", "xattrs"}, missing
    assert missing["devices"] == 2 and missing["xattrs"] == 2  # trusted.* on a file, a link
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and "not root" in warnings[0], proc.stderr
    back = dest / str(src).lstrip("/")
    after = describe(back)
    expected = {}
    for rel, entry in before.items():
        if "rdev" in entry:
            continue  # devices need root
        kept = dict(entry, uid=NOBODY, gid=NOBODY, xattrs={
            k: v for k, v in entry["xattrs"].items() if k.startswith(("user.", "system."))})
        expected[rel] = kept
    assert after.keys() == expected.keys()
    for rel in expected:
        assert after[rel] == expected[rel], rel
    checked = registry.get("files").verify_restored(repo, snap, str(dest), include=[],
                                                    report=report)
    assert checked["files"] == checked["files_identical"]


def test_old_snapshots_without_the_new_fields_restore(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    """Trees written by older releases: no uid/gid when 0, no xattrs, holes or atimes."""
    old_fields = ["name", "type", "mode", "mtime_ns", "size", "sha256", "content", "subtree",
                  "target", "uid", "gid", "user", "group", "inode", "dev", "nlink", "ctime_ns",
                  "meta"]

    def old_to_dict(self: Node) -> dict[str, Any]:
        return {k: getattr(self, k) for k in old_fields
                if getattr(self, k) or k in ("name", "type", "mode", "size")}

    src = tmp_path / "src"
    (src / "etc").mkdir(parents=True)
    (src / "etc" / "shadow").write_bytes(b"secret")
    os.chown(src / "etc" / "shadow", 0, 42)
    (src / "etc" / "shadow").chmod(0o640)
    (src / "f").write_bytes(b"x")
    os.chown(src / "f", 1234, 0)
    repo = Repository.init(str(tmp_path / "repo"), password="pw")
    with monkeypatch.context() as m:
        m.setattr(Node, "to_dict", old_to_dict)
        snap = _backup(repo, src)
    raw = repo.reader(snap).node(str(src / "etc" / "shadow").lstrip("/"))
    assert raw.uid is None and raw.gid == 42 and raw.user == "root"  # the old form
    for numeric in (False, True):
        dest = tmp_path / f"dest-{numeric}"
        _restore(repo, snap, dest, numeric_owner=numeric)
        back = dest / str(src).lstrip("/")
        st = os.lstat(back / "etc" / "shadow")
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 42, 0o640)
        st = os.lstat(back / "f")
        assert (st.st_uid, st.st_gid) == (1234, 0)


def test_owner_by_name_unless_numeric() -> None:
    node = Node(name="f", type="file", uid=4242, gid=4343, user="nobody", group="nogroup")
    assert MetaApplier().owner(node) == (NOBODY, NOBODY)
    assert MetaApplier(numeric_owner=True).owner(node) == (4242, 4343)
    unknown = Node(name="f", type="file", uid=777, gid=888, user="no-such-user-h9",
                   group="no-such-group-h9")
    assert MetaApplier().owner(unknown) == (777, 888)
    assert MetaApplier().owner(Node(name="f", type="file")) == (-1, -1)  # nothing recorded


def test_cli_numeric_owner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"owned by 4242, recorded as user daemon")
    os.chown(src / "f", 4242, 4343)
    repo_url = str(tmp_path / "repo")
    repo = Repository.init(repo_url, password="pw")
    monkeypatch.setattr(files_meta, "_user", lambda uid: "daemon")
    monkeypatch.setattr(files_meta, "_group", lambda gid: "daemon")
    snap = _backup(repo, src)
    env = dict(os.environ, STRONGROOM_PASSWORD="pw", STRONGROOM_REPOSITORY=repo_url)
    owners = []
    for extra in ([], ["--numeric-owner"]):
        dest = tmp_path / f"dest{len(extra)}"
        proc = subprocess.run(["strongroom", "restore", snap.id, "--target", str(dest),
                               *extra], env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        st = os.lstat(dest / str(src).lstrip("/") / "f")
        owners.append((st.st_uid, st.st_gid))
    assert owners == [(1, 1), (4242, 4343)]  # daemon is 1:1 on Debian


def test_target_without_xattr_support_warns(monkeypatch: pytest.MonkeyPatch,
                                            caplog: pytest.LogCaptureFixture,
                                            tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"x")
    os.setxattr(src / "f", "user.note", b"kept in the snapshot")
    repo = Repository.init(str(tmp_path / "repo"), password="pw")
    snap = _backup(repo, src)

    def unsupported(*_a: object, **_k: object) -> None:
        raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))

    monkeypatch.setattr(files_meta.os, "setxattr", unsupported)
    with caplog.at_level(logging.WARNING, logger="strongroom"):
        report = _restore(repo, snap, tmp_path / "dest")
    assert report["not_restored_xattrs"] == 1 and report["files"] == 1
    assert "does not support extended attributes" in caplog.text
    assert (tmp_path / "dest" / str(src).lstrip("/") / "f").read_bytes() == b"x"


def test_holes_found_and_left_unwritten(tmp_path: Path) -> None:
    path = tmp_path / "sparse"
    with open(path, "wb") as fh:
        fh.truncate(64 * MiB)
        fh.seek(8 * MiB)
        fh.write(b"d" * 4096)
    with open(path, "rb") as fh:
        holes = find_holes(fh.fileno(), 64 * MiB)
        assert fh.tell() == 0
    assert holes == [[0, 8 * MiB], [8 * MiB + 4096, 56 * MiB - 4096]]
    dense = tmp_path / "dense"
    dense.write_bytes(bytes(MiB))
    with open(dense, "rb") as fh:
        assert find_holes(fh.fileno(), MiB) == []
    # a "hole" that holds data in the snapshot (the file changed while read) is written
    data = bytes(4 * MiB) + b"late write" + bytes(MiB)
    out = tmp_path / "out"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        write_sparse(fd, [data[:3 * MiB], data[3 * MiB:]], [[0, len(data)]], len(data) + 5)
    finally:
        os.close(fd)
    assert out.read_bytes() == data + bytes(5)
    assert os.lstat(out).st_blocks * 512 < 3 * MiB  # the all-zero first chunk was skipped


def test_incremental_from_a_parent_without_holes_reads_the_file_again(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "img", "wb") as fh:
        fh.truncate(32 * MiB)
        fh.write(secrets.token_bytes(4096))
    repo = Repository.init(str(tmp_path / "repo"), password="pw")

    def old_meta(self: SnapshotWriter, meta: dict[str, Any]) -> None:
        self.meta.update({k: v for k, v in meta.items() if k != "holes_recorded"})

    with monkeypatch.context() as m:  # a snapshot written before holes were recorded
        m.setattr("strongroom.sources.files.backup.find_holes", lambda fd, size: [])
        m.setattr(SnapshotWriter, "set_meta", old_meta)
        _backup(repo, src)
    snap = _backup(repo, src, kind="incremental")
    assert snap.stats.bytes_read == 32 * MiB  # read again, to find its holes
    node = repo.reader(snap).node(str(src / "img").lstrip("/"))
    assert node.holes == [[4096, 32 * MiB - 4096]]
    # a file that takes less disk than its size yet has no holes (compressed file systems)
    # is not re-read by every incremental once its parent recorded holes
    with monkeypatch.context() as m:
        m.setattr("strongroom.sources.files.backup.find_holes", lambda fd, size: [])
        _backup(repo, src, kind="full")
        again = _backup(repo, src, kind="incremental")
    assert again.stats.bytes_read == 0
