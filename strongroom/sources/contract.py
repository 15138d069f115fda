"""The Source contract: what every kind of data (files, postgres, neo4j, redis, s3, ...) provides.

A source kind is one package under ``strongroom/sources/<kind>/`` whose ``__init__.py`` defines
one :class:`Source` subclass and registers an instance of it with
:func:`strongroom.sources.registry.register`. Everything above the engine (CLI ``restore``,
Prefect blocks, the platform file, recovery tasks, retries) reads the registry: adding a kind
never edits a list of kinds elsewhere.

Keep the package's ``__init__.py`` light: import drivers (psycopg, redis, neo4j, boto3) inside
the methods, so listing the registry costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from strongroom.errors import (
    ConfigError,
    IntegrityError,
    NotSupported,
    SourceError,
    SourceUnreachable,
)

if TYPE_CHECKING:
    from strongroom.repository import Repository, Snapshot

ObjectiveClass = Literal["database", "files", "system", "security"]
# What a restore's ``progress`` callback counts: bytes of the snapshot, or nothing.
ProgressUnit = Literal["bytes", "none"]
# The snapshot kinds the engine knows (a source may accept only some of them).
SnapshotKind = Literal["full", "incremental", "differential", "snapshot"]
Progress = Callable[[float], None]


@dataclass
class ScratchTarget:
    """A throwaway restore target made for a recovery drill (never a production target).

    ``target`` is what ``restore``/``verify_restored`` get (a path, URL or DSN on loopback or
    under the drill's work directory); ``options`` override the source block's restore options
    (e.g. the scratch server's own password; never shown); ``description`` is secret-free."""

    target: str
    description: str
    options: dict[str, Any] = field(default_factory=dict)


class Source:
    """One kind of data. Subclass it, set the class attributes, implement backup and restore.

    Class attributes:
      kind            the ``source_kind`` written into snapshots ("files", "postgres", ...)
      default_class   objective class when the platform file names none
      progress_unit   "bytes": ``restore`` calls ``progress(n)`` with bytes written
      tools           executables a restore needs on the restoring host (checked in prepare)
      transient       exception types worth retrying (besides :class:`SourceUnreachable`)
      target_is_path  True when a restore target is a local directory (files-like kinds)
      fails_over      True when a restore can promote what it restored as the new primary
                      (``failover``: see :meth:`serving_options`)
    """

    kind: ClassVar[str] = ""
    default_class: ClassVar[ObjectiveClass] = "files"
    progress_unit: ClassVar[ProgressUnit] = "none"
    tools: ClassVar[tuple[str, ...]] = ()
    transient: ClassVar[tuple[type[BaseException], ...]] = (SourceUnreachable,)
    target_is_path: ClassVar[bool] = False
    fails_over: ClassVar[bool] = False

    def backup(self, repo: Repository, *, name: str, kind: str, tags: list[str],
               settings: dict[str, Any]) -> Snapshot:
        """Write a new snapshot of the source described by ``settings`` (the block's fields,
        secrets revealed) into ``repo``; return it. ``kind`` is one of :data:`SnapshotKind`:
        a source maps kinds it does not distinguish onto the nearest one it has."""
        raise NotImplementedError

    def restore(self, repo: Repository, snap: Snapshot, target: str, *, replace: bool,
                include: list[str], options: dict[str, Any],
                progress: Progress | None = None) -> dict[str, Any]:
        """Restore ``snap`` into ``target`` (a path, URL or DSN); verify what was written as
        part of the restore and return a small report (``verified``: bool, counts).
        Options are the kind's ``--restore-option`` keys; unknown keys raise ConfigError."""
        raise NotImplementedError

    def verify_restored(self, repo: Repository, snap: Snapshot, target: str, *,
                        include: list[str], report: dict[str, Any]) -> dict[str, Any]:
        """Check a finished restore independently of the restorer; raise IntegrityError on any
        difference. The default trusts the restorer's own checks in ``report``."""
        if report.get("verified") is False or report.get("errors"):
            raise IntegrityError(f"restored {snap.source_name} failed its checks: "
                                 f"{report.get('errors') or 'not verified'}")
        return {"checked": "restorer's own checks",
                **{k: v for k, v in report.items() if k != "duration_s"}}

    def check_target(self, target: str, *, settings: dict[str, Any], replace: bool,
                     size: int) -> list[str]:
        """Before any service is stopped or anything overwritten: raise when a restore of
        ``size`` bytes into ``target`` cannot succeed (ConfigError: a target of the wrong kind,
        naming it; TargetNotEmpty: it holds data and ``replace`` is false; TargetTooSmall: no
        room). Returns notes for the post-mortem. The default checks nothing."""
        return []

    def safety_backup(self, repo: Repository, *, name: str, target: str, replace: bool,
                      settings: dict[str, Any]) -> Snapshot | None:
        """Before a restore with ``replace`` overwrites ``target`` in a way it cannot undo
        itself: snapshot what ``target`` holds, as ``<name>-safety`` tagged ``safety`` and
        ``pre-restore``, and return it once it is known complete and was read back in full.

        The default points this kind's backup at the target (:meth:`settings_for_target`,
        from the block's ``settings``) and never at anything else: a target this kind cannot
        read is a ConfigError naming it, before anything is written. A snapshot that left
        something out (:meth:`snapshot_gaps`) or does not read back is an error too, so the
        restore never starts on the word of a partial copy. None: nothing will be overwritten
        (no ``replace``: the restore refuses a target that holds data) or the target holds
        nothing (:meth:`holds_data`). A kind whose restore keeps the previous contents aside
        itself (a directory moved aside, files swapped in) overrides this."""
        if not replace:
            return None
        pointed = self.settings_for_target(dict(settings), target)
        if pointed is None:
            raise ConfigError(f"cannot read {shown_target(target)} to keep a safety copy; a "
                              f"{self.kind} source snapshots only targets it can back up, and "
                              "a restore with replace needs that copy: nothing was written")
        if not self.holds_data(pointed):
            return None
        snap = self.backup(repo, name=f"{name}-safety", kind="snapshot",
                           tags=["safety", "pre-restore"], settings=pointed)
        gaps = self.snapshot_gaps(snap)
        if gaps:
            raise SourceError(f"the safety snapshot {snap.short_id} of "
                              f"{shown_target(target)} is incomplete ({'; '.join(gaps)}); "
                              "nothing was overwritten: make the target quiet and try again")
        read_back(repo, snap)
        return snap

    def holds_data(self, settings: dict[str, Any]) -> bool:
        """Whether the target ``settings`` point at (see :meth:`settings_for_target`) holds
        anything a restore with replace would overwrite. True (the default) when this kind
        cannot tell: a safety snapshot is then taken anyway."""
        return True

    def snapshot_gaps(self, snap: Snapshot) -> list[str]:
        """What a backup of this kind left out of ``snap`` (objects skipped or vanished, read
        errors, dangling records), one phrase each; [] (the default) when it is complete."""
        return []

    def in_place_target(self, settings: dict[str, Any]) -> str | None:
        """Where this source's data lives, as a restore target (its directory, data
        directory, server URL or bucket): a recovery that names no target restores there.
        None (the default): this kind cannot say, and the caller needs a target."""
        return None

    def scratch_target(self, snap: Snapshot, workdir: Path, *,
                       settings: dict[str, Any]) -> AbstractContextManager[ScratchTarget]:
        """A context manager that creates a scratch target able to receive ``snap`` (a
        directory under ``workdir``, a private server on a free loopback port, a scratch bucket
        prefix), yields its :class:`ScratchTarget` and removes it on exit. ``settings`` are the
        source block's (secrets revealed). Raises NotSupported (or SourceError) with the reason
        when this kind cannot make one: a drill then fails with that reason."""
        raise NotSupported(f"{self.kind} sources cannot create a scratch restore target")

    def point_in_time(self, repo: Repository, snaps: list[Snapshot],
                      point: dict[str, str]) -> tuple[Snapshot, dict[str, Any]] | None:
        """A recovery to ``point`` (one of ``{"time"|"lsn"|"xid"|"name": value}``): the base
        snapshot among ``snaps`` (oldest first) and the restore options that replay to exactly
        that point. None (the default): this kind restores whole snapshots only, so the
        caller takes the newest snapshot at or before a time and says so."""
        return None

    def serving_options(self, target: str, *, failover: bool,
                        sql_checks: bool) -> dict[str, Any]:
        """Restore options that leave the server a restore into ``target`` starts running
        afterwards: promoted as the new primary (``failover``, only when :attr:`fails_over`)
        or for SQL smoke checks (stopped after them). {} (the default): this kind's restore
        leaves no server of its own behind."""
        return {}

    def recovery_options(self, target: str) -> dict[str, Any]:
        """Restore options a recovery flow adds for ``target`` (files: the source path's
        contents into the target, every staged file hashed before the swap). {} (the
        default): none."""
        return {}

    def undo_options(self) -> dict[str, Any]:
        """Restore options that make a target hold exactly a snapshot, nothing else: what an
        undo restores a safety snapshot with (Redis: flush first). {} (the default): the
        kind's restore with ``replace`` already does."""
        return {}

    def settings_for_target(self, settings: dict[str, Any],
                            target: str) -> dict[str, Any] | None:
        """The source's ``settings`` pointed at ``target`` (the URL or DSN a restore is about
        to overwrite), so a safety snapshot taken with them is of that target. None (the
        default): this kind cannot read ``target``, and the caller says so."""
        return None

    def is_transient(self, exc: BaseException) -> bool:
        """True when retrying may cure ``exc`` (the source was down, restarting, unreachable)."""
        return isinstance(exc, self.transient)

    def __repr__(self) -> str:
        return f"<source {self.kind}>"


def shown_target(target: str) -> str:
    """``target`` as an operator may see it: a URL's password (``scheme://user:pw@host``)
    is left out."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(target)
        secret = parts.password
    except ValueError:
        return target
    if not secret:
        return target
    host = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}@" if parts.username else ""
    return parts._replace(netloc=f"{user}{host}").geturl()


def read_back(repo: Repository, snap: Snapshot) -> None:
    """Read ``snap`` back in full: the engine's structure check of it (its trees, and the
    packs its blobs are in are stored), then every blob of every file decrypted and checked
    against its id and every file against its recorded SHA-256. IntegrityError names the first
    problem. Costs one read of this snapshot, whatever the repository's size."""
    from strongroom.repository.verify import verify

    result = verify(repo, snapshot_ids=[snap.id])
    if result.errors:
        more = f" (and {len(result.errors) - 1} more)" if len(result.errors) > 1 else ""
        raise IntegrityError(f"snapshot {snap.short_id} does not read back: "
                             f"{result.errors[0]}{more}")
    reader = repo.reader(snap)
    for path, node in reader.walk():
        if node.type == "file":
            for _chunk in reader.chunks(node, path):
                pass
