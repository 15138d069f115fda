"""Deterministic halves of the reader/prune race: a reader whose index is older than a
prune's repack and sweep, or whose listing of index/ names a file the sweep then replaced,
still reads every kept snapshot (FORMAT.md, "Concurrency", rules 2 and 3)."""

from __future__ import annotations

from datetime import timedelta

from strongroom.repository.prune import prune
from strongroom.repository.verify import verify
from tests.tiers.helpers import backup, new_repo, open_repo, random_files, read_all


def _history(url: str, opts: dict) -> tuple[str, dict[str, bytes]]:
    repo = new_repo(url, options=opts, pack_target=1 << 20)
    shared = {f"shared/{k}": v for k, v in random_files(1, count=2, size=40_000).items()}
    backup(repo, {**shared, **random_files(2, count=6, size=40_000)}, source="churn")
    kept = {**shared, **random_files(3, count=1, size=10_000)}
    return backup(repo, kept, source="keep").id, kept


def _forget_and_prune(url: str, opts: dict) -> None:
    repo = open_repo(url, options=opts)
    for snap in repo.list_snapshots("churn"):
        repo.remove_snapshot(snap)  # forgotten: its own data goes, the shared part is repacked
    report = prune(repo, grace=timedelta(0), repack_threshold=0.1)
    assert report.repacked_packs and report.deleted_packs and report.index_files_rewritten


def test_reader_with_an_index_older_than_a_repack_and_sweep(target) -> None:
    url, opts = target
    snap_id, files = _history(url, opts)
    reader = open_repo(url, options=opts)
    snap = reader.find_snapshot(snap_id)
    assert reader.index.blobs  # read before the prune: it places kept blobs in doomed packs
    _forget_and_prune(url, opts)
    assert read_all(reader, snap) == files


def test_reader_listing_an_index_file_the_sweep_replaced(target, monkeypatch) -> None:
    url, opts = target
    snap_id, files = _history(url, opts)
    reader = open_repo(url, options=opts)
    stale = list(reader.backend.list("index/"))  # the listing a reader took just before
    _forget_and_prune(url, opts)
    real_list = reader.backend.list
    calls = []

    def listing(prefix: str):
        if prefix == "index/" and not calls:
            calls.append(prefix)
            return iter(stale)
        return real_list(prefix)

    monkeypatch.setattr(reader.backend, "list", listing)
    reader.reload_index()
    assert reader.index_errors == []
    assert read_all(reader, reader.find_snapshot(snap_id)) == files
    monkeypatch.setattr(reader.backend, "list", real_list)
    calls.clear()
    monkeypatch.setattr(reader.backend, "list", listing)
    assert verify(reader).errors == []
