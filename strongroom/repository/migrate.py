"""``strongroom migrate``: a format-1 repository becomes format 2 in place, without rewriting data.

1. ``keyring/base`` (the format-1 master's blob-id key, chunker seed and config-MAC key, and its
   audit MAC key: blob ids, dedup and audit chains carry on) and ``keyring/epoch-00000000``
   (the format-1 data key: every existing object, headerless, stays readable) and
   ``keyring/epoch-00000001`` (the first epoch with headers: new objects) are written, wrapped
   under the (unchanged) master key;
2. ``config`` is rewritten with ``version: 2`` (one atomic put): the switch.

A kill before step 2 leaves a format-1 repository (the keyring objects are ignored and written
again by the next run); after it, a format-2 one. The same keys open it before and after.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from strongroom.crypto.epochs import (
    LEGACY_EPOCH,
    BaseKeys,
    load_keyring,
    new_base_object,
    new_epoch_object,
)
from strongroom.errors import ConfigError
from strongroom.repository.format import FORMAT_VERSION
from strongroom.repository.locks import RepositoryLock
from strongroom.repository.repo import Repository, config_mac, keyring_objects


@dataclass
class MigrateReport:
    from_version: int
    to_version: int
    migrated: bool


def migrate(repo: Repository, lock_wait_s: float = 120.0) -> MigrateReport:
    """Migrate ``repo`` (opened with any key) to the current format; nothing if it is already."""
    version = repo.format_version
    if version >= FORMAT_VERSION:
        return MigrateReport(version, version, False)
    if version != 1:
        raise ConfigError(f"cannot migrate format {version}")
    lock = RepositoryLock.acquire(repo.backend, exclusive=False, purpose="migrate",
                                  wait_s=lock_wait_s)
    try:
        base = BaseKeys.of_format1(repo.master)
        objects = [new_base_object(repo.master, repo.id, base),
                   new_epoch_object(LEGACY_EPOCH, repo.master, repo.id,
                                    repo.master.encryption_key, legacy=True),
                   new_epoch_object(1, repo.master, repo.id, os.urandom(32))]
        for obj in objects:
            repo.backend.put(obj.key, obj.dump())
        base2, keyring = load_keyring(keyring_objects(repo.backend), repo.master, repo.id)
        config = {k: v for k, v in repo.config.items() if k != "mac"}
        config["version"] = FORMAT_VERSION
        config["mac"] = config_mac(config, repo.master, base2)
        lock.ensure_held()
        repo.backend.put("config", json.dumps(config, indent=1).encode())
    finally:
        lock.release()
    repo.config = config
    repo.format_version = FORMAT_VERSION
    repo.base = base2
    repo.keyring.replace(keyring)
    return MigrateReport(version, FORMAT_VERSION, True)
