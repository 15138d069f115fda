"""What a request to stage archived objects did, and AWS's typical staging times."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from strongroom.errors import ConfigError

RETRIEVAL_TIERS = ("Expedited", "Standard", "Bulk")
# Typical AWS staging times (hours) by storage class and retrieval tier: (low, high).
STAGING_HOURS = {
    ("GLACIER", "Expedited"): (1 / 60, 5 / 60), ("GLACIER", "Standard"): (3, 5),
    ("GLACIER", "Bulk"): (5, 12), ("DEEP_ARCHIVE", "Standard"): (9, 12),
    ("DEEP_ARCHIVE", "Bulk"): (24, 48),
}


def check_retrieval_tier(retrieval_tier: str) -> None:
    """ConfigError unless ``retrieval_tier`` is one S3 knows."""
    if retrieval_tier not in RETRIEVAL_TIERS:
        raise ConfigError("retrieval tier must be Expedited, Standard or Bulk")


@dataclass
class StagingReport:
    requested: list[str] = field(default_factory=list)
    in_progress: list[str] = field(default_factory=list)
    ready: list[str] = field(default_factory=list)
    storage_classes: set[str] = field(default_factory=set)
    retrieval_tier: str = "Standard"

    def merge(self, part: StagingReport) -> None:
        """Add the keys and storage classes of ``part`` to this report."""
        self.requested += part.requested
        self.in_progress += part.in_progress
        self.ready += part.ready
        self.storage_classes |= part.storage_classes

    def estimate(self) -> str:
        """A human estimate of the wait, from AWS's published retrieval times."""
        waiting = len(self.requested) + len(self.in_progress)
        if not waiting:
            return "all objects are readable now"
        spans = [STAGING_HOURS.get((c, self.retrieval_tier), (3, 12))
                 for c in self.storage_classes or {"GLACIER"}]
        low, high = max(s[0] for s in spans), max(s[1] for s in spans)
        unit = (lambda h: f"{h * 60:.0f} min") if high < 1 else (lambda h: f"{h:g} h")
        return (f"{waiting} object(s) staging ({', '.join(sorted(self.storage_classes))}, "
                f"{self.retrieval_tier} retrieval): typically {unit(low)} to {unit(high)}")

    def as_dict(self) -> dict[str, Any]:
        return {"requested": len(self.requested), "in_progress": len(self.in_progress),
                "ready": len(self.ready), "storage_classes": sorted(self.storage_classes),
                "retrieval_tier": self.retrieval_tier, "estimate": self.estimate()}
