"""After a backup: refresh the metrics textfile (when configured) and check target capacity.

The deploy step saves the platform's operations settings in the Prefect Variable
``strongroom_operations``: ``{"metrics_textfile": PATH or null, "capacity_threshold": 0.7,
"targets": {name: {"tier": primary|secondary|archive, "capacity_bytes": int or null}}}``.
Repository facts of every target a run touched are kept beside the textfile
(``PATH.json``, with failure counts per source and tier), so each run rewrites the whole file
from the newest facts of every target.
"""

from __future__ import annotations

import fcntl
import json
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from tasks.events import CAPACITY_EXCEEDED, emit
from tasks.repos import repository

OPERATIONS_VARIABLE = "strongroom_operations"
DEFAULT_THRESHOLD = 0.7


def operations_settings() -> dict[str, Any]:
    """The deploy step's operations settings (empty when never deployed)."""
    from prefect.variables import Variable

    value = Variable.get(OPERATIONS_VARIABLE, default=None)
    return value if isinstance(value, dict) else {}


@contextmanager
def _locked(path: Path) -> Any:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@task(name="update-metrics", cache_policy=NO_CACHE)
def update_metrics(targets: list[str], failed: list[str] | None = None,
                   tier: str | None = None) -> dict[str, Any]:
    """Read the facts of ``targets``, emit a capacity event for a target above the threshold,
    count ``failed`` sources (block references) of ``tier``, rewrite the textfile."""
    from strongroom.metrics import build_registry, repository_facts, write_textfile

    logger = get_run_logger()
    settings = operations_settings()
    threshold = float(settings.get("capacity_threshold") or DEFAULT_THRESHOLD)
    known = settings.get("targets") or {}
    facts: dict[str, dict[str, Any]] = {}
    for name in targets:
        info = known.get(name) or {}
        with repository(name) as repo:
            facts[name] = repository_facts(repo, name, info.get("tier", "primary"),
                                           info.get("capacity_bytes"))
        ratio = facts[name]["capacity_ratio"]
        if ratio is not None and ratio >= threshold:
            summary = (f"target {name} is {ratio:.0%} full (threshold {threshold:.0%}): add "
                       "capacity or shorten retention")
            logger.warning("%s", summary)
            emit(CAPACITY_EXCEEDED, f"strongroom.target.{name}", summary,
                 {"ratio": round(ratio, 4), "threshold": threshold}, name=name)
    path = settings.get("metrics_textfile")
    if not path:
        return {"targets": list(facts), "textfile": None}
    textfile = Path(path)
    state_file = textfile.with_name(textfile.name + ".json")
    with _locked(textfile):
        state = json.loads(state_file.read_text()) if state_file.exists() else {}
        state.setdefault("targets", {}).update(facts)
        failures = state.setdefault("failures", {})
        for ref in failed or []:
            key = f"{ref.rpartition('/')[2]}|{tier or ''}"
            failures[key] = failures.get(key, 0) + 1
        tmp = state_file.with_name(state_file.name + ".tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(state_file)
        write_textfile(textfile, build_registry(state["targets"].values(), failures,
                                                _drills()))
    return {"targets": list(facts), "textfile": str(textfile)}


def _drills() -> dict[str, Any] | None:
    try:
        from tasks.drill_history import read_history
    except ImportError:
        return None
    try:
        return read_history()
    except Exception:  # noqa: BLE001 - drill metrics are optional
        return None
