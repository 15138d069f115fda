"""Data-key epochs: rotate without re-upload, re-encrypt old epochs (resumable, next to a
backup), retire, rotate the master key (every slot kind), kill -9 at each step; local and S3."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from strongroom.crypto.epochs import EPOCH_MAGIC, epoch_of
from strongroom.errors import LockedError
from strongroom.repository import Repository
from strongroom.repository.reencrypt import epoch_usage, reencrypt
from tests.keys.conftest import PASSWORD, assert_restored, make_tree, one_line_error

SECOND = "a second password"


def _snapshot_ids(cli) -> list[str]:
    return [s["id"] for s in json.loads(cli("snapshots", "--json").stdout)]


def test_rotate_keeps_old_data_readable_and_dedup(cli, repo_env, tmp_path: Path) -> None:
    cli("init")
    src = make_tree(tmp_path / "src")
    cli("backup", "files", str(src))
    out = json.loads(cli("key", "rotate", "--json").stdout)
    assert out["epoch"] == 2 and out["seconds"] < 1.0
    second = cli("backup", "files", str(src), "--json")
    stats = json.loads(second.stdout)
    assert stats["stats"]["bytes_new"] < 4096  # same blob ids after the rotation: only trees
    for snap in _snapshot_ids(cli):
        dest = tmp_path / f"out-{snap[:8]}"
        cli("restore", snap, "--target", str(dest))
        assert (dest / str(src).lstrip("/") / "big.bin").read_bytes() == \
            (src / "big.bin").read_bytes()
    epochs = json.loads(cli("key", "epochs", "--usage", "--json").stdout)
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert epochs[1]["current"] and epochs[0]["objects"] > 0 and epochs[1]["objects"] > 0
    rows = json.loads(cli("key", "list", "--json").stdout)
    assert rows[0]["epoch"] == 2


def test_objects_say_their_epoch(local_cli, local_env, tmp_path: Path) -> None:
    local_cli("init")
    src = make_tree(tmp_path / "src")
    local_cli("backup", "files", str(src))
    local_cli("key", "rotate")
    (src / "new.txt").write_text("after the rotation\n")
    local_cli("backup", "files", str(src))
    root = Path(local_env["STRONGROOM_REPOSITORY"])
    seen = {epoch_of(p.read_bytes()) for d in ("index", "snapshots") for p in (root / d).iterdir()}
    assert seen == {1, 2}
    assert all(p.read_bytes()[:4] == EPOCH_MAGIC for p in (root / "data").rglob("*")
               if p.is_file())
    assert sorted(p.name for p in (root / "keyring").iterdir()) == \
        ["base", "epoch-00000001", "epoch-00000002"]


def test_reencrypt_then_retire(cli, repo_env, tmp_path: Path) -> None:
    cli("init")
    src = make_tree(tmp_path / "src")
    cli("backup", "files", str(src))
    cli("key", "rotate")
    refused = cli("key", "retire", "1", check=False)
    one_line_error(refused, 2, "epoch 1 is still needed", "--reencrypt")
    current = cli("key", "retire", "2", check=False)
    one_line_error(current, 2, "current epoch")
    report = json.loads(cli("key", "rotate", "--reencrypt", "--json").stdout)
    assert report["targets"] == [1] and report["packs_rewritten"] >= 2
    assert report["packs_deleted"] == report["packs_rewritten"]
    assert len(report["snapshots_resealed"]) == 1
    cli("key", "retire", "1")
    epochs = json.loads(cli("key", "epochs", "--usage", "--json").stdout)
    assert epochs[0]["retired"] and epochs[0]["objects"] == 0
    verify = cli("verify", "--read-data")
    assert "no errors found" in verify.stdout
    assert_restored(cli, src, tmp_path / "out")
    again = cli("key", "rotate", "--reencrypt")
    assert "nothing to re-encrypt" in again.stdout


def test_retired_epoch_is_named_when_needed(tmp_path: Path) -> None:
    """An object still sealed under a retired epoch fails to open, naming the epoch."""
    from strongroom.crypto.aead import SealError
    from strongroom.repository.reencrypt import retire_epoch

    repo = Repository.init(str(tmp_path / "repo"), PASSWORD)
    stray = repo.keyring.seal(b"\x00{}", b"strongroom/v1/snapshot")  # never stored
    repo.rotate_epoch()
    retire_epoch(repo, 1)
    with pytest.raises(SealError, match="epoch 1, whose key is retired"):
        repo.keyring.open(stray, b"strongroom/v1/snapshot")


def _child(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=300)


def _big_repo(root: Path, src: Path, packs: int = 6) -> Repository:
    repo = Repository.init(str(root), PASSWORD, pack_target=1 << 20)
    repo.add_slot("password", SECOND.encode())
    src.mkdir(parents=True, exist_ok=True)
    for i in range(packs):
        (src / f"f{i}").write_bytes(os.urandom(1_100_000))
    return repo


def _backup(env: dict[str, str], src: Path) -> None:
    subprocess.run(["strongroom", "backup", "files", str(src)], env=env, check=True,
                   capture_output=True, timeout=300)


@pytest.mark.parametrize("phase", ["copy", "swap"])
def test_reencrypt_resumes_after_kill_9(local_cli, local_env, tmp_path: Path,
                                        phase: str) -> None:
    root = Path(local_env["STRONGROOM_REPOSITORY"])
    src = tmp_path / "src"
    _big_repo(root, src)
    _backup(local_env, src)
    local_cli("key", "rotate")
    hook = {"copy": """
        n = [0]
        def on_pack(old, new):
            n[0] += 1
            if n[0] == 2:
                os.kill(os.getpid(), signal.SIGKILL)
        rr.reencrypt(repo, on_pack=on_pack)
        """, "swap": """
        real = repo.backend.delete
        def delete(key):
            if key.startswith("data/"):
                os.kill(os.getpid(), signal.SIGKILL)
            real(key)
        repo.backend.delete = delete
        rr.reencrypt(repo)
        """}[phase]
    killed = _child(f"""
        import os, signal
        from strongroom.repository import Repository
        from strongroom.repository import reencrypt as rr
        repo = Repository.open({str(root)!r}, {PASSWORD!r})
        {textwrap.indent(textwrap.dedent(hook), '        ').strip()}
        """, local_env)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    # the keys that opened it before open it now; everything reads
    for pw in (PASSWORD, SECOND):
        assert "no errors found" in local_cli("verify", "--read-data",
                                              env={"STRONGROOM_PASSWORD": pw}).stdout
    assert_restored(local_cli, src, tmp_path / "out-killed")
    assert "interrupted re-encryption" in local_cli("key", "list").stdout
    report = json.loads(local_cli("key", "rotate", "--reencrypt", "--json").stdout)
    assert report["resumed"]
    if phase == "copy":
        assert report["packs_rewritten"] < 8  # the two copied before the kill are not redone
    local_cli("key", "retire", "1")
    assert "no errors found" in local_cli("verify", "--read-data").stdout
    assert_restored(local_cli, src, tmp_path / "out")
    assert not list((root / "data").rglob(".tmp-*"))


def test_reencrypt_next_to_a_running_backup(tmp_path: Path) -> None:
    """A backup that started under epoch 1 holds its shared lock through the re-encryption's
    copy; the swap waits for it (here: gives up), and a second run takes what it wrote."""
    root, src = tmp_path / "repo", tmp_path / "src"
    repo = _big_repo(root, src, packs=3)
    with repo.writer("early", "files") as first:
        first.add_bytes("a", os.urandom(2_500_000))
        first.commit()
    backup = Repository.open(str(root), PASSWORD)
    writer = backup.writer("late", "files")  # lock taken, keyring read: epoch 1
    repo.rotate_epoch()
    with pytest.raises(LockedError):
        reencrypt(repo, lock_wait_s=1)
    for i in range(3):
        writer.add_bytes(f"f{i}", os.urandom(300_000))
    snap = writer.commit()
    assert epoch_usage(repo).get(1)
    report = reencrypt(repo, lock_wait_s=5)
    assert report.resumed and report.packs_deleted >= 1
    assert not any(epoch_usage(repo).get(1, {}).values())
    from strongroom.repository.reencrypt import retire_epoch
    from strongroom.repository.verify import verify

    retire_epoch(repo, 1)
    fresh = Repository.open(str(root), PASSWORD)
    assert any(s.source_name == "late" for s in fresh.list_snapshots())
    result = verify(fresh, read_data=True)
    assert result.ok, result.errors
    assert snap is not None


def test_master_rotation_refuses_a_slot_it_cannot_rewrap(local_cli, local_env,
                                                         tmp_path: Path) -> None:
    local_cli("init")
    pw2 = tmp_path / "pw2"
    pw2.write_text(SECOND)
    local_cli("key", "add", "--new-password-file", str(pw2))
    other = next(r["id"] for r in json.loads(local_cli("key", "list", "--json").stdout)
                 if not r["current"])
    refused = local_cli("key", "rotate", "--master", check=False)
    one_line_error(refused, 2, other, "--slot-password-file", secrets_=(PASSWORD, SECOND))
    root = Path(local_env["STRONGROOM_REPOSITORY"])
    before = {p.name: p.read_bytes() for p in (root / "keys").iterdir()}
    assert before == {p.name: p.read_bytes() for p in (root / "keys").iterdir()}
    local_cli("key", "rotate", "--master", "--slot-password-file", str(pw2))
    for pw in (PASSWORD, SECOND):
        local_cli("snapshots", env={"STRONGROOM_PASSWORD": pw})
    assert {p.name for p in (root / "keys").iterdir()} == set(before)  # same slot ids
    assert all(p.read_bytes() != before[p.name] for p in (root / "keys").iterdir())
    keyring = [json.loads(p.read_bytes()) for p in (root / "keyring").iterdir()]
    assert all(len(k["wrapped"]) == 1 for k in keyring)  # the old master is gone
    dropped = local_cli("key", "rotate", "--master", "--drop-slot", other)
    assert other in dropped.stdout
    assert one_line_error(local_cli("snapshots", check=False,
                                    env={"STRONGROOM_PASSWORD": SECOND}), 11)


@pytest.mark.parametrize("kill_at", ["keyring base", "slot", "drop", "unwrap-old base"])
def test_master_rotation_survives_kill_9(local_cli, local_env, tmp_path: Path,
                                         kill_at: str) -> None:
    root = Path(local_env["STRONGROOM_REPOSITORY"])
    src = make_tree(tmp_path / "src")
    repo = Repository.init(str(root), PASSWORD)
    repo.add_slot("password", SECOND.encode())
    third = repo.add_slot("password", b"third, to be dropped").id
    _backup(local_env, src)
    local_cli("key", "rotate")
    killed = _child(f"""
        import os, signal
        from strongroom.repository import Repository
        from strongroom.repository.rekey import SlotCredentials, rotate_master
        repo = Repository.open({str(root)!r}, {PASSWORD!r})
        def step(name):
            if name.startswith({kill_at!r}):
                os.kill(os.getpid(), signal.SIGKILL)
        creds = SlotCredentials(passwords=[{PASSWORD!r}.encode(), {SECOND!r}.encode()],
                                drop={{{third!r}}})
        rotate_master(repo, creds, after_step=step)
        """, local_env)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    for pw in (PASSWORD, SECOND):
        assert_restored(local_cli, src, tmp_path / f"out-{pw[:3]}",
                        env={"STRONGROOM_PASSWORD": pw})
    pw2 = tmp_path / "pw2"
    pw2.write_text(SECOND)
    local_cli("key", "rotate", "--master", "--slot-password-file", str(pw2),
              "--drop-slot", third)
    for pw in (PASSWORD, SECOND):
        assert "no errors found" in local_cli("verify", "--read-data",
                                              env={"STRONGROOM_PASSWORD": pw}).stdout


def test_master_rotation_rewraps_kms_pkcs11_escrow(local_cli, local_env, kms_key, softhsm,
                                                   tmp_path: Path) -> None:
    cli = local_cli
    cli("init")
    src = make_tree(tmp_path / "src")
    cli("backup", "files", str(src))
    token = dict(softhsm)
    cli("key", "add", "--kms-key-id", kms_key["arn"], "--kms-endpoint", kms_key["endpoint"])
    cli("key", "add", "--pkcs11-module", softhsm["STRONGROOM_PKCS11_MODULE"], "--pkcs11-token",
        softhsm["STRONGROOM_PKCS11_TOKEN"], "--pkcs11-key", softhsm["STRONGROOM_PKCS11_KEY"],
        "--pkcs11-create-key", env=token)
    cli("key", "escrow-keygen", "--out", str(tmp_path / "escrow"))
    cli("key", "add", "--escrow-public-key", str(tmp_path / "escrow" / "escrow-public.pem"))
    # without the escrow holder's public key: refused, naming the escrow slot; nothing changed
    no_escrow = cli("key", "rotate", "--master", check=False,
                    env={**token, "STRONGROOM_KMS_ENDPOINT": kms_key["endpoint"]})
    one_line_error(no_escrow, 2, "escrow", "--escrow-public-key",
                   secrets_=(PASSWORD, softhsm["STRONGROOM_PKCS11_PIN"]))
    cli("key", "rotate", "--master", "--escrow-public-key",
        str(tmp_path / "escrow" / "escrow-public.pem"),
        env={**token, "STRONGROOM_KMS_ENDPOINT": kms_key["endpoint"]})
    # every kind opens the repository under the new master
    assert_restored(cli, src, tmp_path / "by-kms", env={"STRONGROOM_KMS": "1"},
                    unset=("STRONGROOM_PASSWORD",))
    assert_restored(cli, src, tmp_path / "by-token", env=token, unset=("STRONGROOM_PASSWORD",))
    assert_restored(cli, src, tmp_path / "by-escrow",
                    env={"STRONGROOM_ESCROW_KEY": str(tmp_path / "escrow" / "escrow-private.pem")},
                    unset=("STRONGROOM_PASSWORD",))
    assert_restored(cli, src, tmp_path / "by-password")


def test_rotate_is_fast_and_independent_of_size(tmp_path: Path) -> None:
    small = Repository.init(str(tmp_path / "small"), PASSWORD)
    big = _big_repo(tmp_path / "big", tmp_path / "src", packs=8)
    with big.writer("s", "files") as writer:
        for i in range(8):
            writer.add_bytes(f"f{i}", os.urandom(1_100_000))
        writer.commit()
    times = []
    for repo in (small, big):
        started = time.perf_counter()
        repo.rotate_epoch()
        times.append(time.perf_counter() - started)
    assert max(times) < 0.5, times


def test_format1_repository_reads_migrates_rotates(tmp_path: Path) -> None:
    """The fixture was written by the release before data-key epochs (tests/keys/fixtures)."""
    import tarfile

    from tests.keys.fixtures.make_format1 import FILES
    from tests.keys.fixtures.make_format1 import PASSWORD as PW1

    with tarfile.open(Path(__file__).parent / "fixtures" / "format1-repo.tar.gz") as tar:
        tar.extractall(tmp_path, filter="data")
    root = tmp_path / "repo"
    env = {**os.environ, "STRONGROOM_REPOSITORY": str(root), "STRONGROOM_PASSWORD": PW1}

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["strongroom", *args], env=env, capture_output=True, text=True,
                              timeout=300)
        assert not check or proc.returncode == 0, proc.stderr
        return proc

    def restored_ok(dest: Path, snap: str = "latest") -> None:
        run("restore", snap, "--target", str(dest))
        got = {p.relative_to(dest).as_posix().split("/src/", 1)[1]: p.read_bytes()
               for p in dest.rglob("*") if p.is_file()}
        assert got == FILES

    assert len(json.loads(run("snapshots", "--json").stdout)) == 2  # format 1 reads as before
    restored_ok(tmp_path / "v1")
    one_line_error(run("key", "rotate", check=False), 2, "strongroom migrate")
    assert "from format 1 to 2" in run("migrate").stdout
    assert "already format 2" in run("migrate").stdout
    assert json.loads((root / "config").read_text())["version"] == 2
    restored_ok(tmp_path / "v2")
    src = tmp_path / "again"
    for name, data in FILES.items():
        (src / "src" / name).parent.mkdir(parents=True, exist_ok=True)
        (src / "src" / name).write_bytes(data)
    stats = json.loads(run("backup", "files", str(src / "src"), "--json").stdout)["stats"]
    assert stats["bytes_new"] < 4096  # blob ids and chunker seed kept: 1 MiB deduplicated
    epochs = json.loads(run("key", "epochs", "--usage", "--json").stdout)
    assert [(e["epoch"], e["legacy"]) for e in epochs] == [(0, True), (1, False)]
    assert epochs[0]["objects"] > 0
    run("key", "rotate", "--reencrypt")
    one_line_error(run("key", "retire", "0", check=False), 2, "rotate --master")
    run("key", "rotate", "--master")
    run("key", "retire", "0")
    assert "no errors found" in run("verify", "--read-data").stdout
    for snap in json.loads(run("snapshots", "--json").stdout):
        dest = tmp_path / f"final-{snap['id'][:8]}"
        run("restore", snap["id"], "--target", str(dest))
    shutil.rmtree(tmp_path / "v1")
