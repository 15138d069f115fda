"""Prometheus metrics of repositories, backups and drills (no orchestrator needed).

Facts come from the repositories themselves (snapshot manifests carry time, duration and byte
counts), plus two optional records kept by the orchestration layer: failure counts per source
and tier, and the recovery-drill history (the format of ``tasks/drill_history.py``). Names
follow Prometheus conventions (``_seconds``, ``_bytes``, ``_ratio``, ``_total``); labels:

* ``source``, ``kind`` (source kind), ``tier`` (backup tier: full, incremental, ...) and
  ``target`` on backup and recovery-point metrics;
* ``target`` and ``tier`` (storage tier: primary, secondary, archive) on repository metrics.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, generate_latest, write_to_textfile

from strongroom.policy.retention import schedule_of
from strongroom.repository.repo import Repository

PREFIX = "strongroom"


def _stored_bytes(repo: Repository) -> dict[str, int]:
    out = {p: sum(size for _, size in repo.backend.list(p + "/"))
           for p in ("data", "index", "snapshots")}
    out["total"] = sum(out.values()) + sum(size for p in ("keys", "locks")
                                           for _, size in repo.backend.list(p + "/"))
    return out


def capacity_of(repo: Repository, stored: int, capacity_bytes: int | None) -> float | None:
    """Fraction of the target's capacity in use: the repository's bytes over a configured
    capacity, else (local repositories) the used fraction of the file system it lives on."""
    if capacity_bytes:
        return stored / capacity_bytes
    desc = repo.backend.describe()
    if desc.get("kind") == "local" and desc.get("url"):
        usage = shutil.disk_usage(str(desc["url"]))
        return (usage.total - usage.free) / usage.total if usage.total else None
    return None


def repository_facts(repo: Repository, target: str, tier: str = "primary",
                     capacity_bytes: int | None = None, now: datetime | None = None
                     ) -> dict[str, Any]:
    """Size, dedup, capacity and the newest snapshot of every source and backup tier."""
    now = now or datetime.now(UTC)
    snaps = repo.list_snapshots()
    stored = _stored_bytes(repo)
    logical = sum(s.stats.bytes_total for s in snaps)
    backups: dict[tuple[str, str, str], dict[str, Any]] = {}
    for snap in snaps:  # oldest first: the last one seen is the newest
        key = (snap.source_name, snap.source_kind, schedule_of(snap))
        entry = backups.setdefault(key, {"snapshots": 0})
        entry.update(
            snapshots=entry["snapshots"] + 1, time=snap.order_time.timestamp(),
            duration_s=snap.stats.duration_s, bytes_read=snap.stats.bytes_read,
            bytes_new=snap.stats.bytes_new, bytes_stored=snap.stats.bytes_stored,
            snapshot=snap.short_id)
    return {
        "target": target, "tier": tier, "url": repo.url, "computed": now.timestamp(),
        "size_bytes": stored["total"], "data_bytes": stored["data"],
        "snapshots": len(snaps), "logical_bytes": logical,
        "dedup_ratio": logical / stored["data"] if stored["data"] else None,
        "capacity_ratio": capacity_of(repo, stored["total"], capacity_bytes),
        "backups": [{"source": s, "kind": k, "tier": t, **v}
                    for (s, k, t), v in sorted(backups.items())],
    }


def _gauge(registry: CollectorRegistry, name: str, doc: str, labels: Iterable[str]) -> Gauge:
    return Gauge(f"{PREFIX}_{name}", doc, list(labels), registry=registry)


def build_registry(targets: Iterable[dict[str, Any]], failures: dict[str, Any] | None = None,
                   drills: dict[str, Any] | None = None, now: float | None = None
                   ) -> CollectorRegistry:
    """A registry holding every metric: ``targets`` from :func:`repository_facts`;
    ``failures``: ``{"<source>|<tier>": count}``; ``drills``: the drill history object."""
    now = time.time() if now is None else now
    reg = CollectorRegistry()
    blabels = ("source", "kind", "tier", "target")
    last_ok = _gauge(reg, "backup_last_success_timestamp_seconds",
                     "Time of the newest snapshot of a source and backup tier", blabels)
    duration = _gauge(reg, "backup_last_duration_seconds",
                      "How long the newest backup of a source and tier took", blabels)
    read = _gauge(reg, "backup_last_read_bytes", "Bytes read by the newest backup", blabels)
    new = _gauge(reg, "backup_last_new_bytes", "New (not deduplicated) bytes of the newest "
                 "backup", blabels)
    written = _gauge(reg, "backup_last_stored_bytes", "Bytes stored (compressed, encrypted) "
                     "by the newest backup", blabels)
    count = _gauge(reg, "snapshots", "Snapshots held per source and backup tier", blabels)
    age = _gauge(reg, "recovery_point_age_seconds", "Age of the newest recovery point of a "
                 "source in a target", ("source", "kind", "target"))
    rlabels = ("target", "tier")
    size = _gauge(reg, "repository_size_bytes", "Bytes a repository stores", rlabels)
    cap = _gauge(reg, "repository_capacity_ratio", "Fraction of the target's capacity in use",
                 rlabels)
    dedup = _gauge(reg, "repository_dedup_ratio", "Logical bytes of all snapshots over stored "
                   "data bytes", rlabels)
    rsnaps = _gauge(reg, "repository_snapshots", "Snapshots in a repository", rlabels)
    computed = _gauge(reg, "repository_facts_timestamp_seconds", "When these repository facts "
                      "were read", rlabels)
    for facts in targets:
        t, tier = facts["target"], facts["tier"]
        size.labels(t, tier).set(facts["size_bytes"])
        rsnaps.labels(t, tier).set(facts["snapshots"])
        computed.labels(t, tier).set(facts["computed"])
        if facts.get("capacity_ratio") is not None:
            cap.labels(t, tier).set(facts["capacity_ratio"])
        if facts.get("dedup_ratio") is not None:
            dedup.labels(t, tier).set(facts["dedup_ratio"])
        newest: dict[tuple[str, str], float] = {}
        for b in facts["backups"]:
            lv = (b["source"], b["kind"], b["tier"], t)
            last_ok.labels(*lv).set(b["time"])
            duration.labels(*lv).set(b["duration_s"])
            read.labels(*lv).set(b["bytes_read"])
            new.labels(*lv).set(b["bytes_new"])
            written.labels(*lv).set(b["bytes_stored"])
            count.labels(*lv).set(b["snapshots"])
            key = (b["source"], b["kind"])
            newest[key] = max(newest.get(key, 0.0), b["time"])
        for (source, kind), ts in newest.items():
            age.labels(source, kind, t).set(max(0.0, now - ts))
    fails = _gauge(reg, "backup_failures_total", "Failed backups of a source and tier since "
                   "the record began", ("source", "tier"))
    for key, n in (failures or {}).items():
        source, _, tier = key.partition("|")
        fails.labels(source, tier).set(n)
    _drill_metrics(reg, drills)
    return reg


def _drill_metrics(reg: CollectorRegistry, history: dict[str, Any] | None) -> None:
    labels = ("scope", "source", "kind")
    rto = _gauge(reg, "drill_last_rto_seconds", "Recovery time measured by the last drill",
                 labels)
    rpo = _gauge(reg, "drill_last_rpo_seconds", "Recovery point the schedules delivered in the "
                 "last drill", labels)
    ok = _gauge(reg, "drill_last_success", "1 if the last drill restored and verified", labels)
    when = _gauge(reg, "drill_last_timestamp_seconds", "When the last drill finished", labels)
    due = _gauge(reg, "drill_next_due_timestamp_seconds", "When the next drill is due", labels)
    newest: dict[tuple[str, str], dict[str, Any]] = {}
    for d in (history or {}).get("drills", []):
        newest[(d.get("scope", "source"), d.get("name", "?"))] = d
    for (scope, name), d in newest.items():
        lv = (scope, name, d.get("kind") or "")
        if d.get("rto_s") is not None:
            rto.labels(*lv).set(d["rto_s"])
        if d.get("rpo_s") is not None:
            rpo.labels(*lv).set(d["rpo_s"])
        ok.labels(*lv).set(1 if d.get("ok") else 0)
        for gauge, field in ((when, "finished"), (due, "next_due")):
            stamp = _timestamp(d.get(field))
            if stamp is not None:
                gauge.labels(*lv).set(stamp)


def _timestamp(text: Any) -> float | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(str(text))
    except ValueError:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def render(registry: CollectorRegistry) -> str:
    """The Prometheus text exposition format."""
    return generate_latest(registry).decode()


def write_textfile(path: str | Path, registry: CollectorRegistry) -> None:
    """Write atomically (temporary file then rename), as the node-exporter collector needs."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry)


def load_json(path: str | Path | None) -> dict[str, Any] | None:
    """A JSON record (drill history, failure counts), or None when there is no such file."""
    if not path or not Path(path).exists():
        return None
    return json.loads(Path(path).read_text())
