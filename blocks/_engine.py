"""The few places where blocks call the engine (kept together so the contract is in one spot)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from strongroom.errors import NotSupported, RepositoryNotFound

if TYPE_CHECKING:
    from strongroom.repository import Repository, Snapshot

def s3_options(block: Any) -> dict[str, str]:
    """The engine's S3 options from a block's ``endpoint_url``, ``region`` and credentials
    (secrets revealed in-process only)."""
    opts: dict[str, str] = {}
    if block.endpoint_url:
        opts["endpoint"] = block.endpoint_url
    if block.region:
        opts["region"] = block.region
    for name in ("access_key_id", "secret_access_key"):
        value = getattr(block, name)
        if value is not None:
            opts[name] = value.get_secret_value()
    return opts


def open_repository(url: str, key: dict[str, Any], storage: dict[str, str],
                    create: bool = False) -> Repository:
    """``Repository.open`` (or ``init`` when asked and missing) with the backend's options."""
    from strongroom.repository import Repository

    options = dict(storage) or None
    try:
        return Repository.open(url, **key, options=options)
    except RepositoryNotFound:
        if not create:
            raise
    return Repository.init(url, **key, options=options)


def backup_source(kind: str, repo: Repository, name: str, snapshot_kind: str, tags: list[str],
                  settings: dict[str, Any]) -> Snapshot:
    """Back up one source into ``repo`` through its engine module; returns the new snapshot.

    Files use ``strongroom.sources.files.backup_files``; other kinds a module-level ``backup``
    function, until which they are "not supported yet".
    """
    if kind == "files":
        from strongroom.sources.files import backup_files

        if snapshot_kind not in ("full", "incremental", "differential"):
            snapshot_kind = "incremental"  # a files "snapshot" is an incremental read
        result = backup_files(repo, settings["paths"], name=name, kind=snapshot_kind,
                              tags=tags, excludes=settings.get("exclude") or [])
        return result.snapshot
    from strongroom.sources.registry import _PROVIDERS

    module_name = _PROVIDERS.get(kind, f"strongroom.sources.{kind}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise NotSupported(f"backing up {kind} sources is not supported yet ({exc.name})") from exc
    fn = getattr(module, "backup", None)
    if fn is None and kind == "neo4j" and hasattr(module, "backup_neo4j"):
        opts = dict(settings)
        password = opts.get("password")
        if password is None and opts.get("password_env"):  # the block names a variable
            password = module.password_from(opts["password_env"])
        return module.backup_neo4j(repo, opts.pop("uri"), name=name, kind=snapshot_kind,
                                   tags=tags, user=opts.get("user"), password=password,
                                   database=opts.get("database"),
                                   consistent=bool(opts.get("consistent")))
    if fn is None:
        raise NotSupported(f"backing up {kind} sources is not supported yet")
    result = fn(repo, name=name, kind=snapshot_kind, tags=tags, **settings)
    return getattr(result, "snapshot", result)
