"""The WAL receiver keeps storing when pg_receivewal completes a segment while its ``.partial``
is being stored (found by bench/rpo_replication: the rename ended the receiver's loop with a
FileNotFoundError, every later segment stayed unarchived and a restore to latest silently lost
seconds of commits). Deterministic: the segment completes exactly while the partial is stored."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from strongroom.repository import Repository
from strongroom.sources.postgres import walstore
from strongroom.sources.postgres.receiver import Receiver

SEG = 1 << 20
PARTIAL = "000000010000000000000007"


@pytest.fixture
def receiver(tmp_path: Path) -> Receiver:
    repo = Repository.init(str(tmp_path / "repo"), password="pw")
    rec = Receiver(repo, "host=127.0.0.1 port=9 user=replicator dbname=postgres", "main",
                   tmp_path / "spool")
    rec.seg_size, rec.system_id = SEG, "7000000000000000001"  # what _prepare reads
    rec.spool.mkdir()
    return rec


def test_segment_completed_while_its_partial_is_stored(receiver: Receiver,
                                                       monkeypatch) -> None:
    spool = receiver.spool
    received = os.urandom(SEG // 2) + bytes(SEG // 2)  # written so far, zero padded
    (spool / f"{PARTIAL}.partial").write_bytes(received)
    complete = received[: SEG // 2] + os.urandom(SEG // 2)
    hashed = walstore._sha256_file

    def segment_completes_meanwhile(path: Path):  # pg_receivewal finishes and renames
        out = hashed(path)
        live = spool / f"{PARTIAL}.partial"
        if live.exists():
            live.write_bytes(complete)
            live.rename(spool / PARTIAL)
        return out

    monkeypatch.setattr(walstore, "_sha256_file", segment_completes_meanwhile)
    receiver._guarded(receiver.store_partial)  # must neither raise nor end the loop
    monkeypatch.undo()
    assert receiver._guarded(receiver.store_completed) == 1

    catalog = walstore.WalCatalog.load(receiver.repo, "main")
    assert catalog.read(PARTIAL) == complete  # the completed segment is archived
    if f"{PARTIAL}.partial" in catalog.files:  # and the partial, if stored, is a prefix
        assert complete.startswith(catalog.read(f"{PARTIAL}.partial")[: SEG // 2])
    assert not list(spool.iterdir()) or [p.name for p in spool.iterdir()] == [".partial-copy"]


def test_a_growing_partial_is_stored_as_a_copy(receiver: Receiver, monkeypatch) -> None:
    """pg_receivewal appends while the partial is stored: the store never fails with
    'changed while it was being archived', and what is stored is what was copied."""
    live = receiver.spool / f"{PARTIAL}.partial"
    live.write_bytes(os.urandom(SEG // 4) + bytes(SEG - SEG // 4))
    first = live.read_bytes()
    hashed = walstore._sha256_file

    def appended_meanwhile(path: Path):
        out = hashed(path)
        with open(live, "r+b") as fh:
            fh.seek(SEG // 4)
            fh.write(os.urandom(1024))
        return out

    monkeypatch.setattr(walstore, "_sha256_file", appended_meanwhile)
    assert receiver.store_partial() is True
    monkeypatch.undo()
    assert receiver.errors == 0
    catalog = walstore.WalCatalog.load(receiver.repo, "main")
    assert catalog.read(f"{PARTIAL}.partial") == first


def test_a_file_system_error_is_reported_and_retried(receiver: Receiver) -> None:
    def broken() -> None:
        raise PermissionError(13, "Permission denied", str(receiver.spool))

    assert receiver._guarded(broken) is None
    assert receiver.errors == 1 and "Permission denied" in receiver.last_error
