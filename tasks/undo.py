"""The undo of a recovery: what it replaced and how to put that back.

A recovery records, per source, the previous contents it kept beside a path target
(``kept``) and the safety snapshot it took of a target it could not keep aside. The plan is
written into the post-mortem (a hidden JSON line, and the exact commands for people);
``undo-recovery`` reads it back from the artifact and puts each source's pre-recovery state in
place.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from shlex import quote

from pydantic import BaseModel, Field

from strongroom.errors import ConfigError
from strongroom.sources import swap

PLAN_MARK = "strongroom-undo"
_PLAN_LINE = re.compile(r"<!-- " + PLAN_MARK + r" (\{.*\}) -->")


class UndoStep(BaseModel):
    """How to put one source's target back as it was before a recovery."""

    source: str = Field(description="source block, kind/name")
    dest: str = Field(description="the target the recovery wrote")
    repository: str = Field(description="repository target block the recovery read")
    kept: list[str] = Field(default_factory=list,
                            description="previous contents kept beside the target")
    kept_only: dict[str, list[str]] = Field(
        default_factory=dict, description="kept directory -> the only paths (relative to its "
        "target) the restore replaced in it: an include-restore")
    safety_snapshot: str | None = Field(default=None,
                                        description="snapshot of the target before")
    stop_command: str | None = None
    options: dict[str, str] = Field(default_factory=dict,
                                    description="the recovery's restore options, reused")

    @property
    def possible(self) -> bool:
        return bool(self.kept or self.safety_snapshot)

    def commands(self) -> list[str]:
        """What an operator runs by hand to undo this step."""
        out = []
        for kept in self.kept:
            place = swap.kept_target(Path(kept))
            for rel in self.kept_only.get(kept, [""]):
                now, old = (place / rel, Path(kept) / rel) if rel else (place, Path(kept))
                out.append(f"mv -T {quote(str(now))} {quote(str(now) + '.undone')}; "
                           f"mv -T {quote(str(old))} {quote(str(now))}")
        if self.safety_snapshot:
            out.append(f"strongroom restore {self.safety_snapshot[:12]} --target "
                       f"{quote(self.dest)} --replace")
        return out


class UndoPlan(BaseModel):
    """Every source's undo, in the order the recovery restored them."""

    title: str
    steps: list[UndoStep] = Field(default_factory=list)

    def markdown(self, key: str) -> str:
        """The plan for people (commands) and for ``undo-recovery`` (a hidden JSON line) in
        the post-mortem artifact ``key``."""
        lines = ["", "## Undo", ""]
        doable = [s for s in self.steps if s.possible]
        if not doable:
            lines.append("Nothing was replaced: there is nothing to undo.")
        else:
            lines.append(f"`prefect deployment run 'undo-recovery/undo-recovery' -p "
                         f"post_mortem={key}` puts it back, or by hand:")
            lines.append("")
            lines += [f"* {s.source}: `{c}`" for s in doable for c in s.commands()]
        lines += ["", f"<!-- {PLAN_MARK} {self.model_dump_json()} -->"]
        return "\n".join(lines)

    @classmethod
    def parse(cls, markdown: str) -> UndoPlan:
        """The plan written into a post-mortem; ConfigError when it holds none."""
        found = _PLAN_LINE.search(markdown or "")
        if not found:
            raise ConfigError("this artifact holds no undo plan (not a post-mortem of a "
                              "recovery that replaced anything)")
        return cls.model_validate(json.loads(found.group(1)))
