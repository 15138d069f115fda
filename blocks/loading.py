"""Load blocks by reference: tasks and flows take names, never block objects or secrets."""

from __future__ import annotations

from typing import cast

from prefect.blocks.core import Block

from blocks.sources import SOURCE_BLOCKS, SourceBlock
from blocks.targets import RepositoryTarget
from strongroom.errors import ConfigError


def _load(cls: type[Block], name: str, what: str) -> Block:
    try:
        return cls.load(name)
    except ValueError:
        raise ConfigError(f"no {what} block named {name!r} (register it first)") from None


def load_target(name: str) -> RepositoryTarget:
    """A repository target block by document name."""
    return cast(RepositoryTarget, _load(RepositoryTarget, name, "repository target"))


def load_source(ref: str) -> SourceBlock:
    """A source block: ``kind/name`` (``files/docs``) or a bare name searched in every kind."""
    kind, _, name = ref.rpartition("/")
    if kind:
        cls = SOURCE_BLOCKS.get(kind) or next(
            (c for c in SOURCE_BLOCKS.values() if c.get_block_type_slug() == kind), None)
        if cls is None:
            raise ConfigError(f"unknown source kind {kind!r} in {ref!r}")
        return cast(SourceBlock, _load(cls, name, f"{cls.source_kind} source"))
    for cls in SOURCE_BLOCKS.values():
        try:
            return cast(SourceBlock, cls.load(name))
        except ValueError:
            continue
    raise ConfigError(f"no source block named {name!r} (register it first)")


def source_ref(block: SourceBlock, name: str) -> str:
    """The reference ``load_source`` understands for a saved source block."""
    return f"{block.source_kind}/{name}"
