"""The recovery-drill history: one Prefect Variable that drills write and reports/metrics read.

Format (version 1) of the Variable ``strongroom_drill_history`` (a JSON object)::

    {"version": 1,
     "updated": "2026-12-01T19:30:00+00:00",          # ISO 8601, UTC
     "drills": [                                      # oldest first, newest last
       {"id": "<flow run id>",
        "scope": "source" | "site",                    # one source, or a simulated disaster
        "name": "docs",                                # source name (scope site: the site)
        "kind": "files",                               # source kind (scope site: "site")
        "class": "files",                              # objective class (site: "site")
        "from": "secondary",                           # repository target block restored from
        "started": "2026-12-01T19:29:50+00:00",        # ISO 8601, UTC
        "finished": "2026-12-01T19:30:00+00:00",
        "ok": true,                                    # restored and verified
        "error": null,                                 # one line when not ok
        "snapshot": "1a2b3c4d",                        # short id restored (site: null)
        "verified": true,                              # integrity verified (verify_restored)
        "rto_s": 9.8, "rto_objective_s": 7200.0,       # measured recovery time vs objective
        "rpo_s": 3600.0, "rpo_objective_s": 14400.0,   # RPO the schedules deliver (largest gap
                                                       # between recovery points over 30 days,
                                                       # or since the newest) vs objective
        "rto_met": true, "rpo_met": true,
        "next_due": "2027-03-01",                      # date the next drill of this scope is due
        "artifact": "post-mortem-drill-docs"}]}       # key of its post-mortem artifact

Prefect Variables hold at most 5000 characters: the oldest records are dropped to fit, but the
newest record of every (scope, name) is always kept. ``last_drills()`` gives those newest
records; a drill is overdue when ``next_due`` is in the past. Write with :func:`record_drill`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

HISTORY_VARIABLE = "strongroom_drill_history"
VERSION = 1
MAX_CHARS = 4800  # Prefect's limit is 5000 characters of JSON
# how often each scope is drilled (days): quarterly per source, semi-annual whole site
INTERVAL_DAYS = {"source": 92, "site": 183}


def read_history() -> dict[str, Any]:
    """The history object (an empty version-1 history when none was written yet)."""
    from prefect.variables import Variable

    value = Variable.get(HISTORY_VARIABLE, default=None)
    if not isinstance(value, dict) or not isinstance(value.get("drills"), list):
        return {"version": VERSION, "updated": None, "drills": []}
    return value


def fit(drills: list[dict[str, Any]], limit: int = MAX_CHARS) -> list[dict[str, Any]]:
    """Drop the oldest records until the JSON fits, keeping the newest of each scope/name."""
    drills = list(drills)
    while len(json.dumps(drills)) > limit:
        newest = {}
        for i, d in enumerate(drills):
            newest[(d.get("scope"), d.get("name"))] = i
        keep = set(newest.values())
        drop = next((i for i in range(len(drills)) if i not in keep), None)
        if drop is None:
            break
        del drills[drop]
    return drills


def record_drill(record: dict[str, Any]) -> dict[str, Any]:
    """Append one drill record (see the module doc) and save the Variable; returns the history."""
    from prefect.variables import Variable

    history = read_history()
    drills = fit([*history["drills"], record])
    history = {"version": VERSION, "updated": datetime.now(UTC).isoformat(), "drills": drills}
    Variable.set(HISTORY_VARIABLE, history, overwrite=True)
    return history


def last_drills(history: dict[str, Any] | None = None) -> dict[tuple[str, str], dict[str, Any]]:
    """The newest record of each (scope, name)."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for d in (history or read_history())["drills"]:
        out[(d.get("scope", "source"), d.get("name", "?"))] = d
    return out
