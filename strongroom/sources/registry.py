"""Restorers by source kind: ``strongroom restore`` and recovery flows need no special cases."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from strongroom.errors import NotSupported

Restorer = Callable[..., dict[str, Any]]
_RESTORERS: dict[str, Restorer] = {}
# Modules that register a restorer when imported (kept lazy: drivers load only when needed).
_PROVIDERS = {
    "files": "strongroom.sources.files",
    "redis": "strongroom.sources.redis",
    "neo4j": "strongroom.sources.neo4j",
    "s3": "strongroom.sources.s3bucket",
    "postgres": "strongroom.sources.postgres",
}


def register_restorer(kind: str, fn: Restorer) -> None:
    """Make ``fn(repo, snapshot, target, *, replace, include, options)`` restore ``kind``."""
    _RESTORERS[kind] = fn


def restorer_for(kind: str) -> Restorer:
    """The restorer for a source kind, importing its module on first use."""
    if kind not in _RESTORERS and kind in _PROVIDERS:
        import importlib

        try:
            importlib.import_module(_PROVIDERS[kind])
        except ModuleNotFoundError as exc:
            raise NotSupported(f"restoring {kind} snapshots is not supported yet ({exc})") from exc
    try:
        return _RESTORERS[kind]
    except KeyError:
        raise NotSupported(f"restoring {kind} snapshots is not supported yet") from None
