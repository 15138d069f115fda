"""Policy blocks: retention (grandfather-father-son) and recovery objectives (RTO/RPO)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from prefect.blocks.core import Block

from strongroom.errors import ConfigError

OBJECTIVE_CLASSES = ("database", "files", "system", "security")


class RetentionPolicy(Block):
    """Which snapshots to keep; the newest snapshot of each calendar bucket survives."""

    _block_type_name = "Strongroom Retention Policy"
    _block_type_slug = "strongroom-retention-policy"

    keep_last: int | None = None
    keep_hourly: int | None = None
    keep_daily: int | None = None
    keep_weekly: int | None = None
    keep_monthly: int | None = None
    keep_yearly: int | None = None
    keep_within: str | None = None  # e.g. "14d", "24h", "4w"
    keep_tag: list[str] = []

    def forget_kwargs(self) -> dict[str, Any]:
        """The non-empty rules, named like ``strongroom forget``'s options."""
        data = self.model_dump(include={"keep_last", "keep_hourly", "keep_daily", "keep_weekly",
                                        "keep_monthly", "keep_yearly", "keep_within", "keep_tag"})
        return {k: (tuple(v) if k == "keep_tag" else v) for k, v in data.items()
                if v not in (None, [])}

    def build(self) -> Any:
        """The engine's ``strongroom.policy.retention.RetentionPolicy`` (ConfigError if invalid)."""
        from strongroom.policy.retention import RetentionPolicy as EnginePolicy

        return EnginePolicy.build(**self.forget_kwargs())


@dataclass(frozen=True)
class Objective:
    """Recovery time and recovery point objectives of one class of data."""

    rto: timedelta
    rpo: timedelta


class RecoveryObjectives(Block):
    """RTO/RPO per class of data; defaults are the seed's table."""

    _block_type_name = "Strongroom Recovery Objectives"
    _block_type_slug = "strongroom-recovery-objectives"

    database_rto: timedelta = timedelta(hours=4)
    database_rpo: timedelta = timedelta(hours=1)
    files_rto: timedelta = timedelta(hours=2)
    files_rpo: timedelta = timedelta(hours=4)
    system_rto: timedelta = timedelta(hours=8)
    system_rpo: timedelta = timedelta(hours=24)
    security_rto: timedelta = timedelta(hours=1)
    security_rpo: timedelta = timedelta(minutes=15)

    def for_class(self, name: str) -> Objective:
        """The objective for ``database``, ``files``, ``system`` or ``security``."""
        if name not in OBJECTIVE_CLASSES:
            raise ConfigError(f"unknown objective class {name!r} "
                              f"(one of {', '.join(OBJECTIVE_CLASSES)})")
        return Objective(getattr(self, f"{name}_rto"), getattr(self, f"{name}_rpo"))
