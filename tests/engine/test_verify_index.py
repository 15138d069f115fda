"""verify --read-data checks the index against the packs: restores read where the index
points, so an index entry that disagrees with the pack's header is damage, even when every
blob in the pack decodes."""

from __future__ import annotations

import os
from pathlib import Path

from strongroom.repository import Repository
from strongroom.repository.verify import verify
from strongroom.sources.files import backup_files, restore_files


def test_index_entry_pointing_beside_its_blob_is_reported(tmp_path: Path) -> None:
    url = str(tmp_path / "r")
    Repository.init(url, password="pw")
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_bytes(os.urandom(1000))
    (src / "b").write_bytes(os.urandom(2000))
    repo = Repository.open(url, password="pw")
    snap = backup_files(repo, [src]).snapshot
    # Rewrite the only index file with two data blobs' locations swapped (what a buggy repack
    # or a mixed-up index rewrite would leave): sealed under the right key, names intact.
    (name,) = [k.rsplit("/", 1)[-1] for k, _ in repo.backend.list("index/")]
    doc = repo.load_index_file(name)
    data = [e for p in doc["packs"] for e in p["blobs"] if e[0] == "D"]
    assert len(data) == 2
    data[0][2:4], data[1][2:4] = data[1][2:4], data[0][2:4]
    repo.save_index(doc)
    repo.backend.delete(f"index/{name}")

    fresh = Repository.open(url, password="pw")
    report = verify(fresh, read_data=True)
    assert not report.ok
    assert any("the index places it in pack" in e and snap.short_id in e for e in report.errors)
    try:
        restore_files(fresh, snap, tmp_path / "dest")
    except Exception as exc:  # restore refuses as well, naming the blob
        assert "damaged" in str(exc)
    else:
        raise AssertionError("restore wrote data through a wrong index")
