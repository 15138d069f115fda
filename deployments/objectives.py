"""Can the schedules meet the objectives? The largest gap between backups of each source,
against its class's RPO.

A source's recovery point is at worst as old as the longest stretch between two runs of the
schedules that cover it (all rows together: an hourly snapshot between daily incrementals
counts). That gap is computed from the cron expressions in the platform's time zone over a
year, so weekly and monthly rows and daylight-saving changes are seen as they happen.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from strongroom.errors import ConfigError

if TYPE_CHECKING:
    from deployments.config import PlatformConfig

WINDOW = timedelta(days=400)
MAX_FIRES = 60_000  # per cron; a frequent cron's window ends earlier (it dominates anyway)
START = (2025, 1, 6)  # a Monday; any fixed start keeps the result reproducible
_SAID: set[str] = set()


@dataclass(frozen=True)
class Miss:
    """A source whose schedules leave a longer gap than its class's RPO."""

    source: str
    objective_class: str
    rpo: timedelta
    gap: timedelta | None  # None: no schedule covers it
    schedules: tuple[str, ...]

    def __str__(self) -> str:
        rpo = human(self.rpo)
        if self.gap is None:
            return (f"source {self.source} ({self.objective_class}, RPO {rpo}): no schedule "
                    "backs it up")
        return (f"source {self.source} ({self.objective_class}, RPO {rpo}): its schedules "
                f"({', '.join(self.schedules)}) leave up to {human(self.gap)} between backups, "
                f"missing the RPO by {human(self.gap - self.rpo)}")


def human(delta: timedelta) -> str:
    """``1d 2h``, ``20h``, ``45min``, ``30s``."""
    seconds = int(delta.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return " ".join(parts[:2]) or "0s"


@lru_cache(maxsize=256)
def _fires(cron: str, timezone: str) -> tuple[datetime, ...]:
    from cronsim import CronSim

    tz = ZoneInfo(timezone)
    start = datetime(*START, tzinfo=tz)
    out = []
    for when in CronSim(cron, start):
        if when > start + WINDOW or len(out) >= MAX_FIRES:
            break
        out.append(when.astimezone(UTC))  # wall-clock differences lie across DST
    return tuple(out)


def max_gap(crons: list[str], timezone: str) -> timedelta | None:
    """The longest time between two consecutive runs of any of ``crons`` (None: no cron)."""
    if not crons:
        return None
    fires = [_fires(c, timezone) for c in crons]
    if not any(fires):
        return None
    end = min(f[-1] for f in fires if f)  # the window every cron's list covers
    times = sorted({t for f in fires for t in f if t <= end})
    if len(times) < 2:
        return WINDOW
    return max(b - a for a, b in zip(times, times[1:], strict=False))


def class_rpo(config: PlatformConfig, objective_class: str) -> timedelta:
    """The class's RPO from the platform file, else the seed's (RecoveryObjectives' default)."""
    from blocks.policies import RecoveryObjectives
    from deployments.config import parse_objective

    text = config.objectives.get(objective_class, {}).get("rpo")  # type: ignore[call-overload]
    if text:
        return parse_objective(text)
    return RecoveryObjectives.model_fields[f"{objective_class}_rpo"].default


def schedule_misses(config: PlatformConfig) -> list[Miss]:
    """Every source whose schedules cannot meet its class's RPO."""
    misses = []
    for name in config.sources:
        rows = tuple(r for r in config.schedules if name in config.sources_for(r))
        cls = config.source_class(name)
        rpo = class_rpo(config, cls)
        gap = max_gap([config.schedules[r].cron for r in rows], config.timezone)
        if gap is None or gap > rpo:
            misses.append(Miss(name, cls, rpo, gap, rows))
    return misses


def check_schedules(config: PlatformConfig, origin: str, strict: bool = False) -> list[Miss]:
    """Warn on stderr (once per message and process) about each source that misses its RPO;
    with ``strict`` raise ConfigError naming them instead."""
    misses = schedule_misses(config)
    if misses and strict:
        raise ConfigError(f"{origin}: schedules cannot meet the objectives: "
                          + "; ".join(str(m) for m in misses))
    for miss in misses:
        line = f"warning: {origin}: {miss}"
        if line not in _SAID:
            _SAID.add(line)
            print(line, file=sys.stderr)
    return misses
