"""Snapshot manifests and tree nodes."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, PrivateAttr

from strongroom.clock import beyond_tolerance
from strongroom.hostid import host_id

NodeType = Literal["file", "dir", "symlink", "fifo", "chardev", "blockdev"]
SnapshotKind = Literal["full", "incremental", "differential", "snapshot"]


@dataclass(slots=True)
class Node:
    """One entry of a tree: a file, directory, symlink, fifo or device, with what it takes to
    restore it. Fields after ``meta`` were added later: older trees lack them (defaults)."""

    name: str
    type: NodeType
    mode: int = 0o644
    mtime_ns: int = 0
    size: int = 0
    sha256: str = ""
    content: list[str] = field(default_factory=list)
    subtree: str = ""
    target: str = ""
    uid: int | None = None
    gid: int | None = None
    user: str = ""
    group: str = ""
    inode: int = 0
    dev: int = 0
    nlink: int = 1
    ctime_ns: int = 0
    meta: dict[str, Any] = field(default_factory=dict)
    xattrs: dict[str, str] = field(default_factory=dict)  # name -> base64 value
    holes: list[list[int]] = field(default_factory=list)  # [offset, length] of sparse holes
    rdev_major: int = 0
    rdev_minor: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain dict without defaults (the tree blob form); ``uid``/``gid`` 0 are kept."""
        raise NotImplementedError  # replaced below by _node_to_dict (one per tree entry: hot)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Node:
        return cls(**data)


_NODE_FIELDS = [f.name for f in fields(Node)]
_ALWAYS = {"name", "type", "mode", "size"}
_OWNER = {"uid", "gid"}


def _node_to_dict_source() -> str:
    """Node.to_dict written out field by field: a loop of getattr per field cost more than
    the rest of a directory's tree encoding."""
    lines = ["def to_dict(self):", "    out = {}"]
    for key in _NODE_FIELDS:
        if key in _ALWAYS:
            lines.append(f"    out[{key!r}] = self.{key}")
        else:
            test = "is not None" if key in _OWNER else ""
            lines += [f"    v = self.{key}", f"    if v {test}:", f"        out[{key!r}] = v"]
    lines.append("    return out")
    return "\n".join(lines)


def _compiled_to_dict() -> Any:
    scope: dict[str, Any] = {}
    exec(_node_to_dict_source(), scope)  # noqa: S102 (our own field names, fixed at import)
    function = scope["to_dict"]
    function.__doc__ = Node.to_dict.__doc__
    function.__qualname__ = "Node.to_dict"
    return function


Node.to_dict = _compiled_to_dict()  # type: ignore[method-assign]


class SnapshotStats(BaseModel):
    files: int = 0
    dirs: int = 0
    bytes_read: int = 0
    bytes_total: int = 0
    bytes_new: int = 0
    bytes_stored: int = 0
    blobs_new: int = 0
    duration_s: float = 0.0


class Snapshot(BaseModel):
    """A snapshot manifest. ``id`` is the SHA-256 of its stored file, set when loaded."""

    version: int = 1
    id: str = ""
    time: datetime
    host: str
    host_id: str = ""  # random, kept under the state directory: host names are not unique
    user: str = ""
    source_name: str
    source_kind: str
    kind: SnapshotKind = "full"
    parent: str | None = None
    tags: list[str] = Field(default_factory=list)
    paths: list[str] = Field(default_factory=list)
    tree: str
    stats: SnapshotStats = Field(default_factory=SnapshotStats)
    checksum: str = ""
    meta: dict[str, Any] = Field(default_factory=dict)
    # When the storage first received the snapshot, by the storage's clock: set by the writer,
    # kept by copies and re-encryption (whose new files arrive later). None in older snapshots.
    arrived: datetime | None = None
    # Known from the repository's listing (the storage's clock), never sealed in the manifest.
    _stored: datetime | None = PrivateAttr(default=None)
    _future: bool = PrivateAttr(default=False)

    @property
    def short_id(self) -> str:
        return self.id[:8]

    @property
    def stored_time(self) -> datetime | None:
        """When the storage received this snapshot's file, by the storage's clock (known once
        :meth:`Repository.list_snapshots` has listed it; ``None`` before)."""
        return self._stored

    @property
    def arrival(self) -> datetime | None:
        """When the storage first received this snapshot: the earlier of ``arrived`` (sealed
        in the manifest) and the listing's date of its file."""
        known = [aware(t) for t in (self.arrived, self._stored) if t is not None]
        return min(known) if known else None

    @property
    def future_dated(self) -> bool:
        """Whether ``time`` is beyond the clock tolerance after the storage first received
        the snapshot: its writer's clock was ahead."""
        return self._future

    @property
    def order_time(self) -> datetime:
        """What places this snapshot among others ('latest', retention's newest first): its
        ``time``, or for a future-dated snapshot when the storage first received it."""
        arrival = self.arrival
        if self._future and arrival is not None:
            return arrival
        return aware(self.time)

    def order_key(self) -> tuple[datetime, str]:
        """Sort key, oldest first; the id breaks ties."""
        return (self.order_time, self.id)

    def place(self, stored: datetime) -> None:
        """Record when the storage received this snapshot's file (``stored``, from a listing)
        and flag it future-dated when ``time`` is beyond the clock tolerance after its
        arrival. Only dates the storage gave the object decide: never this host's clock."""
        self._stored = aware(stored)
        arrival = self.arrival
        assert arrival is not None
        self._future = beyond_tolerance(max(0.0, (aware(self.time) - arrival).total_seconds()))

    def from_this_host(self) -> bool:
        """Whether this host wrote the snapshot: the same host id, or for a snapshot written
        before host ids (none recorded) the same host name."""
        if self.host_id:
            return self.host_id == host_id()
        return self.host == socket.gethostname()

    def manifest(self) -> dict[str, Any]:
        """What is sealed into the snapshot file (everything but the id)."""
        return self.model_dump(mode="json", exclude={"id"})


def aware(moment: datetime) -> datetime:
    """``moment`` with a time zone (UTC when it has none)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
