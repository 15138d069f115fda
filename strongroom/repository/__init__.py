"""The repository: packs, index, snapshots, readers and writers."""

from strongroom.repository.model import Node, Snapshot, SnapshotStats
from strongroom.repository.repo import Credentials, Repository

__all__ = ["Credentials", "Node", "Repository", "Snapshot", "SnapshotStats"]
