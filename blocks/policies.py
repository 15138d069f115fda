"""Policy blocks: retention (grandfather-father-son) and recovery objectives (RTO/RPO)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from prefect.blocks.core import Block
from pydantic import Field

from strongroom.errors import ConfigError

OBJECTIVE_CLASSES = ("database", "files", "system", "security")


class RetentionPolicy(Block):
    """Which snapshots to keep; the newest snapshot of each calendar bucket survives."""

    _block_type_name = "Strongroom Retention Policy"
    _block_type_slug = "strongroom-retention-policy"

    keep_last: int | None = Field(default=None, description="keep the newest N snapshots")
    keep_hourly: int | None = Field(default=None, description="keep the newest snapshot of "
                                    "each of the last N hours that have one")
    keep_daily: int | None = Field(default=None, description="keep one snapshot for each of "
                                   "the last N days that have one")
    keep_weekly: int | None = Field(default=None, description="keep one snapshot for each of "
                                    "the last N weeks that have one")
    keep_monthly: int | None = Field(default=None, description="keep one snapshot for each "
                                     "of the last N months that have one")
    keep_yearly: int | None = Field(default=None, description="keep one snapshot for each of "
                                    "the last N years that have one")
    keep_within: str | None = Field(default=None, description="keep every snapshot younger "
                                    "than this, e.g. 14d, 24h, 4w, 12m")
    keep_tag: list[str] = Field(default=[], description="always keep snapshots with any of "
                                "these tags")

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

    database_rto: timedelta = Field(default=timedelta(hours=4), description="longest "
                                    "acceptable recovery time of a database")
    database_rpo: timedelta = Field(default=timedelta(hours=1), description="most data loss "
                                    "acceptable for a database (age of the recovery point)")
    files_rto: timedelta = Field(default=timedelta(hours=2), description="longest acceptable "
                                 "recovery time of files")
    files_rpo: timedelta = Field(default=timedelta(hours=4), description="most data loss "
                                 "acceptable for files")
    system_rto: timedelta = Field(default=timedelta(hours=8), description="longest acceptable "
                                  "recovery time of system configuration")
    system_rpo: timedelta = Field(default=timedelta(hours=24), description="most data loss "
                                  "acceptable for system configuration")
    security_rto: timedelta = Field(default=timedelta(hours=1), description="longest "
                                    "acceptable recovery time of security data (keys, "
                                    "certificates, audit logs)")
    security_rpo: timedelta = Field(default=timedelta(minutes=15), description="most data "
                                    "loss acceptable for security data")

    def for_class(self, name: str) -> Objective:
        """The objective for ``database``, ``files``, ``system`` or ``security``."""
        if name not in OBJECTIVE_CLASSES:
            raise ConfigError(f"unknown objective class {name!r} "
                              f"(one of {', '.join(OBJECTIVE_CLASSES)})")
        return Objective(getattr(self, f"{name}_rto"), getattr(self, f"{name}_rpo"))
