"""Errors the engine raises: each carries a one-line message fit for an operator."""

from __future__ import annotations


class StrongroomError(Exception):
    """Base class: the CLI prints ``error: <message>`` and exits with ``exit_code``."""

    exit_code = 1


class ConfigError(StrongroomError):
    """Bad input: options, schedules, paths, URLs."""

    exit_code = 2


class RepositoryNotFound(StrongroomError):
    """No repository at the given location."""

    exit_code = 10


class WrongKey(StrongroomError):
    """No key slot opens with the given password or key file."""

    exit_code = 11


class SnapshotNotFound(StrongroomError):
    """No snapshot matches the given id, prefix or 'latest'."""

    exit_code = 12


class IntegrityError(StrongroomError):
    """Stored data is corrupt, truncated, tampered or missing; names the damaged object."""

    exit_code = 13


class SourceError(StrongroomError):
    """The data source could not be read (unreadable file, unreachable server, auth failure)."""

    exit_code = 14


class SourceUnreachable(SourceError):
    """The source is down, restarting or unreachable (refused, timed out, connection lost):
    waiting and retrying may cure it, unlike a misconfigured or unreadable source."""


class TargetNotEmpty(StrongroomError):
    """A restore target already holds data and no replace flag was given."""

    exit_code = 15


class StorageError(StrongroomError):
    """The storage backend failed (unreachable, denied, full)."""

    exit_code = 16


class LockedError(StrongroomError):
    """The repository is locked exclusively by another process."""

    exit_code = 17


class NotSupported(StrongroomError):
    """A feature or source kind this build does not support yet."""

    exit_code = 18


class ClockSkew(StrongroomError):
    """This host's clock disagrees with the storage's by more than the tolerance."""

    exit_code = 19


class TargetTooSmall(StrongroomError):
    """A restore target lacks the room (free disk, memory limit) for what would be restored."""

    exit_code = 20
