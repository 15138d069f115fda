"""Scratch restore target of a Neo4j drill: a scratch server named by the platform file.

A scratch *database* on the production server needs CREATE DATABASE (Enterprise only), and a
drill must never write the production database, so a drill restores into a separate scratch
server whose Bolt URL the platform file gives (the source's ``scratch_uri`` setting)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from strongroom.errors import NotSupported
from strongroom.sources.contract import ScratchTarget


@contextmanager
def scratch_server(settings: dict[str, Any]) -> Iterator[ScratchTarget]:
    """The ``scratch_uri`` server (its ``scratch_database``, default neo4j), replaced by the
    restore; NotSupported when the platform file names none."""
    uri = settings.get("scratch_uri")
    if not uri:
        raise NotSupported("a Neo4j drill needs a scratch server: CREATE DATABASE needs "
                           "Neo4j Enterprise; set scratch_uri on the source in the platform "
                           "file (a Bolt URL of a server the drill may overwrite)")
    if uri == settings.get("uri"):
        raise NotSupported("scratch_uri is the production server: a drill never writes it")
    database = settings.get("scratch_database") or "neo4j"
    yield ScratchTarget(target=str(uri), description=f"scratch Neo4j server {uri} "
                        f"database {database}", options={"database": database})
