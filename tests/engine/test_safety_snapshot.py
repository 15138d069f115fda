"""The Source contract's safety snapshot, on a real repository with a small kind of its own: it
is of the target (never of the source block in its place), complete, read back in full, tagged
and named for what it is; a target the kind cannot read, a snapshot that left something out, or
one that does not read back, all stop the recovery before anything is overwritten."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from strongroom.errors import ConfigError, IntegrityError, SourceError
from strongroom.repository import Repository, Snapshot
from strongroom.sources.contract import Source, shown_target


class Shelf(Source):
    """Bytes on named shelves (``shelf://name``): what a target holds is ``SHELVES[name]``."""

    kind = "shelf"
    damage = False
    gaps: list[str] = []

    def __init__(self, shelves: dict[str, bytes]) -> None:
        self.shelves = shelves

    def settings_for_target(self, settings: dict[str, Any], target: str) -> dict | None:
        if not target.startswith("shelf://"):
            return None
        return {**settings, "shelf": target.removeprefix("shelf://")}

    def holds_data(self, settings: dict[str, Any]) -> bool:
        return bool(self.shelves.get(settings["shelf"]))

    def snapshot_gaps(self, snap: Snapshot) -> list[str]:
        return list(self.gaps)

    def backup(self, repo: Repository, *, name: str, kind: str, tags: list[str],
               settings: dict[str, Any]) -> Snapshot:
        with repo.writer(source_name=name, source_kind="shelf", kind=kind, tags=tags) as w:
            w.add_stream("shelf", io.BytesIO(self.shelves[settings["shelf"]]))
            w.set_meta({"shelf": settings["shelf"]})
            snap = w.commit()
        if self.damage:
            for key, _size in repo.backend.list("data/"):
                path = Path(repo.url) / key
                raw = bytearray(path.read_bytes())
                raw[len(raw) // 2] ^= 0xFF
                path.write_bytes(bytes(raw))
        return snap


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return Repository.init(str(tmp_path / "repo"), password="safety")


BLOCK = {"shelf": "own"}


def test_the_safety_snapshot_is_of_the_target(repo: Repository) -> None:
    kind = Shelf({"own": b"the block's own data", "other": b"what the target holds" * 1000})
    snap = kind.safety_backup(repo, name="stock", target="shelf://other", replace=True,
                              settings=BLOCK)
    assert snap is not None and snap.source_name == "stock-safety"
    assert sorted(snap.tags) == ["pre-restore", "safety"] and snap.kind == "snapshot"
    assert snap.meta["shelf"] == "other"
    assert repo.reader(snap).read_bytes("shelf") == kind.shelves["other"]


def test_nothing_to_keep_is_none(repo: Repository) -> None:
    kind = Shelf({"own": b"data", "empty": b""})
    assert kind.safety_backup(repo, name="stock", target="shelf://other", replace=False,
                              settings=BLOCK) is None
    assert kind.safety_backup(repo, name="stock", target="shelf://empty", replace=True,
                              settings=BLOCK) is None
    assert repo.list_snapshots() == []


def test_a_target_the_kind_cannot_read_is_refused_never_replaced_by_the_source(
        repo: Repository) -> None:
    kind = Shelf({"own": b"data"})
    with pytest.raises(ConfigError, match=r"cannot read redis://u@h:1 to keep a safety copy"
                       ) as refused:
        kind.safety_backup(repo, name="stock", target="redis://u:secret@h:1", replace=True,
                           settings=BLOCK)
    assert "secret" not in str(refused.value) and refused.value.exit_code == 2
    assert repo.list_snapshots() == []


def test_an_incomplete_snapshot_is_refused(repo: Repository) -> None:
    kind = Shelf({"own": b"data", "other": b"more"})
    kind.gaps = ["2 object(s) deleted while the bucket was being read"]
    with pytest.raises(SourceError, match="is incomplete .*2 object.*nothing was overwritten"):
        kind.safety_backup(repo, name="stock", target="shelf://other", replace=True,
                           settings=BLOCK)


def test_a_snapshot_that_does_not_read_back_is_refused(repo: Repository) -> None:
    kind = Shelf({"own": b"data", "other": b"x" * 5000})
    kind.damage = True
    with pytest.raises(IntegrityError):
        kind.safety_backup(repo, name="stock", target="shelf://other", replace=True,
                           settings=BLOCK)


def test_shown_target_leaves_passwords_out() -> None:
    assert shown_target("redis://:pw@h:6379/0") == "redis://h:6379/0"
    assert shown_target("redis://u:pw@h") == "redis://u@h"
    assert shown_target("/srv/data") == "/srv/data"
    assert shown_target("s3://bucket/p") == "s3://bucket/p"
