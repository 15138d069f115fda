"""Helpers of the Prefect-layer tests: blocks, trees, backup runs. The harness fixture
(``prefect_harness``) and ``names`` live in tests/conftest.py, shared by every directory."""

from __future__ import annotations

import os
from pathlib import Path


def save_local_target(name: str, path: Path, password: str = "pw-prefect-tests") -> str:
    from blocks import RepositoryKey, RepositoryTarget

    RepositoryTarget(url=str(path), role="primary",
                     key=RepositoryKey(password=password)).save(name, overwrite=True)
    return name


def save_files_source(name: str, paths: list[Path]) -> str:
    from blocks import FilesSource
    from flows.limits import ensure_limits

    FilesSource(source_name=name, paths=[str(p) for p in paths]).save(name, overwrite=True)
    ensure_limits([name])
    return f"files/{name}"


def make_tree(root: Path, files: int = 40, size: int = 4096) -> Path:
    """A small tree: nested dirs, a symlink, an empty dir, varied modes."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        sub = root / f"d{i % 4}" / f"e{i % 3}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{i}.bin").write_bytes(os.urandom(size + i))
    (root / "empty").mkdir(exist_ok=True)
    (root / "link").symlink_to("d0/e0")
    (root / "d1" / "script.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "d1" / "script.sh").chmod(0o750)
    return root


def tree_listing(root: Path) -> dict[str, tuple]:
    """Everything a restore must reproduce, read independently of the engine."""
    out: dict[str, tuple] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        st = path.lstat()
        if path.is_symlink():
            out[rel] = ("link", os.readlink(path))
        elif path.is_dir():
            out[rel] = ("dir", st.st_mode & 0o7777)
        else:
            out[rel] = ("file", st.st_mode & 0o7777, st.st_mtime_ns, path.read_bytes())
    return out


def backup_one(tier: str, source: str, **kwargs) -> dict:
    """Run the backup flow of ``tier`` on one source; that source's result."""
    from flows.backup import TIER_FLOWS

    return TIER_FLOWS[tier](tier, [source], **kwargs)["sources"][source]


def backup_state(tier: str, source: str, **kwargs):
    """Run the backup flow of ``tier`` on one source; the run's final state."""
    from flows.backup import TIER_FLOWS

    return TIER_FLOWS[tier](tier, [source], return_state=True, **kwargs)


def with_subflows(client, flow_run_ids: list) -> list:
    """The runs and every subflow run below them (a backup's per-source runs)."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    found, frontier = list(flow_run_ids), list(flow_run_ids)
    while frontier:
        children = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=frontier)))
        frontier = [c.id for c in children if c.id not in found]
        found += frontier
    return found
