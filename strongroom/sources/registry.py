"""The registry of source kinds: every layer above the engine asks it, never a list of kinds.

Built-in kinds are the packages under ``strongroom/sources/`` (each registers itself when
imported); other distributions add kinds through the ``strongroom.sources`` entry-point group
(``mysql = "acme_mysql:MySQLSource"``); a test may :func:`register` a kind directly.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from importlib.metadata import entry_points

from strongroom.errors import NotSupported
from strongroom.sources.contract import Source

_SOURCES: dict[str, Source] = {}
_LOCK = threading.RLock()
_discovered = False


def register(source: Source) -> Source:
    """Make ``source`` the implementation of ``source.kind`` (the last registration wins)."""
    if not source.kind:
        raise ValueError(f"{type(source).__name__} has no kind")
    with _LOCK:
        _SOURCES[source.kind] = source
    return source


def unregister(kind: str) -> None:
    """Forget a kind (tests that register a toy kind clean up with this)."""
    with _LOCK:
        _SOURCES.pop(kind, None)


def _discover() -> None:
    """Import every built-in source package and every ``strongroom.sources`` entry point."""
    global _discovered
    with _LOCK:
        if _discovered:
            return
        import strongroom.sources as pkg

        for info in pkgutil.iter_modules(pkg.__path__):
            if info.ispkg:
                importlib.import_module(f"{pkg.__name__}.{info.name}")
        for ep in entry_points(group="strongroom.sources"):
            obj = ep.load()
            register(obj() if isinstance(obj, type) else obj)
        _discovered = True


def get(kind: str) -> Source:
    """The source implementation of ``kind``; NotSupported for a kind this build lacks."""
    if kind not in _SOURCES:
        try:
            importlib.import_module(f"strongroom.sources.{kind}")
        except ModuleNotFoundError as exc:
            if exc.name != f"strongroom.sources.{kind}":
                raise NotSupported(f"{kind} sources need a module that is not installed "
                                   f"({exc.name}): pip install strongroom") from None
        if kind not in _SOURCES:
            _discover()
    try:
        return _SOURCES[kind]
    except KeyError:
        raise NotSupported(f"{kind!r} sources are not supported by this build "
                           f"(known: {', '.join(kinds())})") from None


def kinds() -> list[str]:
    """Every registered kind, sorted."""
    _discover()
    return sorted(_SOURCES)


def all_sources() -> list[Source]:
    """Every registered source implementation, sorted by kind."""
    return [_SOURCES[k] for k in kinds()]

