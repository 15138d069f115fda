"""Site block: the sources and targets of one site, so a disaster recovery knows them all."""

from __future__ import annotations

from prefect.blocks.core import Block


class StrongroomSite(Block):
    """A site: source block references (``slug/name``) and target block names per tier."""

    _block_type_name = "Strongroom Site"
    _block_type_slug = "strongroom-site"

    sources: list[str] = []
    primary: str = "primary"
    secondary: list[str] = []
    tertiary: list[str] = []
    objectives: str = "default"
