"""Which earlier snapshot a new incremental or differential snapshot compares itself with."""

from __future__ import annotations

from typing import TYPE_CHECKING

from strongroom.errors import ConfigError

if TYPE_CHECKING:
    from strongroom.repository import Repository, Snapshot


def choose_parent(repo: Repository, name: str, kind: str) -> Snapshot | None:
    """incremental: latest snapshot of the source; differential: latest full; full: none."""
    if kind == "full":
        return None
    if kind == "incremental":
        return repo.latest_snapshot(name)
    if kind == "differential":
        return repo.latest_snapshot(name, kind="full")
    raise ConfigError(f"unknown snapshot kind {kind!r} (full, incremental or differential)")
