"""Which earlier snapshot a new incremental or differential snapshot compares itself with:
always one this host wrote (the same host id; by name for snapshots older than host ids).
Another host's snapshot of the same path describes another machine's files."""

from __future__ import annotations

from typing import TYPE_CHECKING

from strongroom.errors import ConfigError

if TYPE_CHECKING:
    from strongroom.repository import Repository, Snapshot


def choose_parent(repo: Repository, name: str, kind: str) -> Snapshot | None:
    """incremental: this host's latest snapshot of the source; differential: this host's
    latest full; full: none."""
    if kind == "full":
        return None
    if kind == "incremental":
        return repo.latest_snapshot(name, same_host=True)
    if kind == "differential":
        return repo.latest_snapshot(name, kind="full", same_host=True)
    raise ConfigError(f"unknown snapshot kind {kind!r} (full, incremental or differential)")
