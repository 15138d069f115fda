"""A new source kind takes one Source and one block: a toy kind (a directory of JSON documents)
defined here passes the generic backup flow, recover-files and a byte-for-byte restore; the
backup flow runs two sources at once and opens the repository once per source run."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tests.prefect.conftest import backup_one, save_local_target, with_subflows

KIND = "toy-json"
# name -> barrier the toy backups of one test wait on together (proves they overlap)
BARRIERS: dict[str, threading.Barrier] = {}


def _toy_source_class() -> type:
    from strongroom.errors import IntegrityError, TargetNotEmpty
    from strongroom.sources.contract import Source

    class JsonDirSource(Source):
        """Every ``*.json`` document under ``settings["directory"]``, checked to parse."""

        kind: ClassVar[str] = KIND
        default_class: ClassVar[str] = "files"
        progress_unit: ClassVar[str] = "bytes"
        target_is_path: ClassVar[bool] = True

        def backup(self, repo, *, name, kind, tags, settings):
            root = Path(settings["directory"])
            if settings.get("barrier"):
                BARRIERS[settings["barrier"]].wait(timeout=120)
            with repo.writer(name, self.kind, kind, tags=tags, paths=[str(root)]) as writer:
                docs = sorted(root.rglob("*.json"))
                for path in docs:
                    data = path.read_bytes()
                    json.loads(data)  # a document that does not parse is not backed up
                    writer.add_bytes(str(path.relative_to(root)), data)
                writer.set_meta({"documents": len(docs)})
                return writer.commit()

        def restore(self, repo, snap, target, *, replace, include, options, progress=None):
            root = Path(target)
            reader = repo.reader(snap)
            count = size = 0
            for rel, node in reader.walk():
                if node.type != "file":
                    continue
                data = reader.read_bytes(rel)
                json.loads(data)
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                (root / rel).write_bytes(data)
                count, size = count + 1, size + len(data)
                if progress:
                    progress(len(data))
            return {"verified": True, "documents": count, "bytes": size}

        def verify_restored(self, repo, snap, target, *, include, report):
            reader = repo.reader(snap)
            files = [(rel, n) for rel, n in reader.walk() if n.type == "file"]
            for rel, _node in files:
                if (Path(target) / rel).read_bytes() != reader.read_bytes(rel):
                    raise IntegrityError(f"restored document {rel} differs from the snapshot")
            return {"checked": "byte for byte", "documents": len(files)}

        def safety_backup(self, repo, *, name, target, replace, settings):
            path = Path(target)
            snap = None
            if path.is_dir() and any(path.iterdir()):
                if not replace:
                    raise TargetNotEmpty(f"restore target {path} is not empty")
                snap = self.backup(repo, name=f"{name}-safety", kind="full",
                                   tags=["safety", "pre-restore"],
                                   settings={"directory": str(path)})
                shutil.rmtree(path)
            path.mkdir(parents=True, exist_ok=True)
            return snap

    return JsonDirSource


@pytest.fixture
def toy_kind(prefect_harness):
    """Register the toy kind with the engine's registry and its block with Prefect; forget
    both afterwards."""
    from pydantic import Field

    import blocks
    from blocks.sources import SOURCE_BLOCKS, SourceBlock
    from strongroom.sources import registry

    registry.register(_toy_source_class()())

    class JsonDirBlock(SourceBlock):
        """A directory of JSON documents (a toy kind defined by a test)."""

        _block_type_name = "Strongroom Toy JSON Source"
        _block_type_slug = "strongroom-toy-json-source"
        source_kind: ClassVar[str] = KIND

        directory: str = Field(description="directory of *.json documents")
        barrier: str | None = Field(default=None, description="test only: wait for another "
                                    "backup on this barrier")

    try:
        assert SOURCE_BLOCKS[KIND] is JsonDirBlock  # defining the class registered it
        assert JsonDirBlock.get_block_type_slug() in blocks.register_all()
        yield JsonDirBlock
    finally:
        SOURCE_BLOCKS.pop(KIND, None)
        registry.unregister(KIND)


def _documents(root: Path, count: int = 12) -> Path:
    for i in range(count):
        sub = root / f"shelf-{i % 3}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"doc-{i}.json").write_text(json.dumps({"id": i, "body": "x" * (100 * i)}))
    return root


def _save_toy(block_cls: type, name: str, directory: Path, **fields: Any) -> str:
    from flows.limits import ensure_limits

    block_cls(source_name=name, directory=str(directory), **fields).save(name, overwrite=True)
    ensure_limits([name])
    return f"{KIND}/{name}"


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_toy_kind_backs_up_recovers_and_restores_byte_for_byte(toy_kind, tmp_path, names):
    from flows.checks import verify_backups
    from flows.recovery import recover_database, recover_files

    data = _documents(tmp_path / "docs")
    src = _save_toy(toy_kind, f"toy-{names}", data)
    tgt = save_local_target(f"primary-{names}", tmp_path / "repo")

    result = backup_one("full", src, primary=tgt)
    snap = result["snapshot"]
    assert (snap["source_kind"], snap["kind"], snap["stats"]["files"]) == (KIND, "full", 12)
    assert result["steps"]["checksum"]["files"] == 12
    assert result["steps"]["encrypt check"]["new_blobs"] > 0
    assert result["steps"]["verify"]["mode"] == "subset"

    out = tmp_path / "restored"
    report = recover_files(src, str(out), from_target=tgt)
    assert _tree(out) == _tree(data)
    assert report["results"][0]["snapshot"] == snap["id"]
    assert report["results"][0]["verified"] == "byte for byte"
    assert list(report["stages"]) == ["assess", "prepare", "restore", "verify"]

    state = recover_database(src, str(tmp_path / "x"), from_target=tgt, return_state=True)
    assert state.is_failed() and "use recover-files" in state.message

    # the generic restore test of the verify flow restores through the registry too
    check = verify_backups(target=tgt, source=src, mode="restore-test")
    assert check["restore"]["documents"] == 12


def test_backup_runs_sources_concurrently_each_in_its_own_subflow(toy_kind, tmp_path, names):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from flows.backup import TIER_FLOWS

    # Both toy backups wait for each other on a barrier: run one after the other, the first
    # would time out there and the run would fail.
    BARRIERS[names] = threading.Barrier(2)
    refs = [_save_toy(toy_kind, f"toy-{side}-{names}", _documents(tmp_path / side, 4),
                      barrier=names) for side in ("a", "b")]
    tgt = save_local_target(f"primary-{names}", tmp_path / "repo")
    state = TIER_FLOWS["full"]("full", refs, primary=tgt, return_state=True)
    assert state.is_completed(), state.message
    assert set(state.result()["sources"]) == set(refs)

    parent = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        ids = with_subflows(client, [parent])
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(
            any_=[i for i in ids if i != parent])))
    subflows = [r for r in runs if r.name.startswith("backup-full-")]
    assert sorted(r.name for r in subflows) == sorted(
        f"backup-full-{r.replace('/', '-')}" for r in refs)
    assert max(r.start_time for r in subflows) < min(r.end_time for r in subflows)


def test_a_failing_source_fails_the_run_but_not_the_other_source(toy_kind, tmp_path, names):
    from blocks.loading import load_target
    from flows.backup import TIER_FLOWS

    good = _save_toy(toy_kind, f"toy-good-{names}", _documents(tmp_path / "good", 3))
    bad_dir = _documents(tmp_path / "bad", 3)
    (bad_dir / "broken.json").write_text("{not json")
    bad = _save_toy(toy_kind, f"toy-bad-{names}", bad_dir)
    tgt = save_local_target(f"primary-{names}", tmp_path / "repo")
    state = TIER_FLOWS["incremental"]("incremental", [bad, good], primary=tgt,
                                       return_state=True)
    assert state.is_failed()
    assert f"1 of 2 sources failed: {bad}" in state.message
    repo = load_target(tgt).open()
    try:
        assert repo.latest_snapshot(f"toy-good-{names}") is not None
        assert repo.latest_snapshot(f"toy-bad-{names}") is None
    finally:
        repo.close()


def test_a_backup_run_opens_the_repository_once(toy_kind, tmp_path, names, monkeypatch):
    from flows.recovery import recover_files
    from strongroom.repository import Repository
    from tasks import repos

    opened: list[str] = []
    real_open = Repository.open.__func__

    def counting_open(cls, url, *args, **kwargs):
        opened.append(url)
        return real_open(cls, url, *args, **kwargs)

    src = _save_toy(toy_kind, f"toy-{names}", _documents(tmp_path / "docs", 5))
    tgt = save_local_target(f"primary-{names}", tmp_path / "repo")
    backup_one("full", src, primary=tgt)  # creates the repository
    monkeypatch.setattr(Repository, "open", classmethod(counting_open))

    result = backup_one("incremental", src, primary=tgt, verify_mode="read-data")
    assert set(result["steps"]) == {"dump", "checksum", "encrypt check", "verify"}
    assert opened == [str(tmp_path / "repo")]  # dump, checksum, encrypt check, verify: one open
    assert repos.open_count() == 0  # closed when the run ended

    opened.clear()
    recover_files(src, str(tmp_path / "out"), from_target=tgt)
    assert opened == [str(tmp_path / "repo")]  # assess, prepare, restore, verify: one open


def test_toy_kind_joins_a_disaster_recovery_from_the_secondary(toy_kind, tmp_path, names):
    """The generic disaster recovery restores a toy source beside a files source, from the
    secondary tier, once the primary is gone; both verify."""
    from blocks import RepositoryKey, RepositoryTarget, StrongroomSite
    from flows.recovery import disaster_recovery
    from tests.prefect.conftest import make_tree, save_files_source, tree_listing

    docs = _documents(tmp_path / "docs")
    files = make_tree(tmp_path / "files", files=6)
    toy = _save_toy(toy_kind, f"toy-dr-{names}", docs)
    plain = save_files_source(f"files-dr-{names}", [files])
    primary = save_local_target(f"primary-{names}", tmp_path / "primary")
    RepositoryTarget(url=str(tmp_path / "secondary"), role="secondary",
                     key=RepositoryKey(password="pw-secondary")).save(f"secondary-{names}")
    StrongroomSite(sources=[toy, plain], primary=primary, secondary=[f"secondary-{names}"]
                   ).save(f"site-{names}")
    for ref in (toy, plain):
        backup_one("full", ref, primary=primary, replicas=[f"secondary-{names}"])
    shutil.rmtree(tmp_path / "primary")

    report = disaster_recovery(site=f"site-{names}", target_root=str(tmp_path / "dr"))
    assert report["ok"], report
    assert _tree(tmp_path / "dr" / f"toy-dr-{names}") == _tree(docs)
    restored = tmp_path / "dr" / f"files-dr-{names}"  # the source path's contents
    assert tree_listing(restored) == tree_listing(files)
    by_source = {r["source"]: r for r in report["results"]}
    assert by_source[f"toy-dr-{names}"]["verified"] == "byte for byte"
