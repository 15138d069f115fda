"""Synthetic history for report tests: backup run records, snapshots, storage, drills."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

SOURCES = ("docs", "main-db", "cache", "config")


def history(now: datetime, days: int, seed: int = 7, fail_every: int = 97
            ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per day and source: an hourly-ish rhythm of 6 backups; durations drift upward slowly,
    one run in ``fail_every`` fails. Returns (runs, snapshots)."""
    rng = random.Random(seed)
    runs, snaps = [], []
    n = 0
    for day in range(days, 0, -1):
        base = now - timedelta(days=day)
        for slot in range(6):
            for src in SOURCES:
                n += 1
                start = base + timedelta(hours=4 * slot, minutes=rng.randint(0, 20))
                dur = 300 + (days - day) * 0.5 + rng.uniform(0, 120)
                failed = n % fail_every == 0
                runs.append({"name": f"backup-{src}-{n}", "state": "FAILED" if failed
                             else "COMPLETED", "start": start,
                             "end": start + timedelta(seconds=dur),
                             "duration_s": dur, "message": "source unreachable" if failed
                             else ""})
                if not failed:
                    snaps.append({"source": src, "tier": "primary", "target": "primary",
                                  "time": start + timedelta(seconds=dur),
                                  "bytes_total": 2 << 30, "bytes_stored": rng.randint(1, 64)
                                  << 20})
    return runs, snaps


def storage() -> list[dict[str, Any]]:
    return [{"target": "primary", "tier": "primary", "bytes": 400 << 30,
             "used_bytes": 600 << 30, "capacity_bytes": 1 << 40},
            {"target": "offsite", "tier": "secondary", "bytes": 410 << 30,
             "used_bytes": None, "capacity_bytes": 500 << 30}]


def drills(now: datetime) -> list[dict[str, Any]]:
    started = now - timedelta(days=20)
    return [{"id": "x", "scope": "source", "name": "docs", "kind": "files", "class": "files",
             "from": "primary", "started": started.isoformat(),
             "finished": (started + timedelta(minutes=3)).isoformat(), "ok": True,
             "error": None, "snapshot": "1a2b3c4d", "verified": True, "rto_s": 180.0,
             "rto_objective_s": 7200.0, "rpo_s": 14000.0, "rpo_objective_s": 14400.0,
             "rto_met": True, "rpo_met": True,
             "next_due": (started + timedelta(days=92)).date().isoformat(),
             "artifact": "drill-docs"}]
