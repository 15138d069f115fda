"""Site block: the sources and targets of one site, so a disaster recovery knows them all."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field


class StrongroomSite(Block):
    """A site: source block references (``slug/name``) and target block names per tier."""

    _block_type_name = "Strongroom Site"
    _block_type_slug = "strongroom-site"

    sources: list[str] = Field(default=[], description="source block references of the "
                               "site, kind/name (files/docs, postgres/main)")
    primary: str = Field(default="primary", description="repository target block of the "
                         "primary tier")
    secondary: list[str] = Field(default=[], description="repository target blocks of the "
                                 "secondary (off-site) tier; a disaster recovery uses the first")
    tertiary: list[str] = Field(default=[], description="repository target blocks of the "
                                "tertiary (long-term archive) tier")
    objectives: str = Field(default="default", description="recovery objectives block the "
                            "recoveries are measured against")
