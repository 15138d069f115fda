"""Where a Neo4j password comes from: a named environment variable or a file, never argv."""

from __future__ import annotations

import os
from pathlib import Path

from strongroom.errors import ConfigError


def password_from(env: str | None = None, file: str | Path | None = None) -> str | None:
    """A Neo4j password from a named environment variable or a file (first line)."""
    if env and file:
        raise ConfigError("give the Neo4j password by environment variable or file, not both")
    if env:
        value = os.environ.get(env)
        if not value:
            raise ConfigError(f"environment variable {env} (Neo4j password) is not set")
        return value
    if file:
        try:
            text = Path(file).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read Neo4j password file {file}: {exc.strerror}"
                              ) from None
        return text.splitlines()[0] if text else ""
    return os.environ.get("STRONGROOM_NEO4J_PASSWORD") or None
