"""Security incident recovery: restore what the sources held before the incident from the
immutable tier, after proving the recovery points were not modified since, with a forensic
copy of the current (possibly tampered) state kept first and the key slots to revoke listed.
Measured against the security class (RTO 1 h, RPO 15 min by default).

Nothing is touched until every source has passed its check and every target has its forensic
copy (``<name>-forensic``, tagged ``forensic``, complete and read back): a failure before the
recovery writes a failed post-mortem saying nothing was changed and listing the copies
taken."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import wait
from prefect.logging import get_run_logger

from blocks.loading import load_source, load_target
from blocks.site import StrongroomSite
from flows.recovery import RECOVERY_TIMEOUT_S, recover, runbook_job
from flows.stopped import failed_post_mortem, one_line, stopped
from strongroom.errors import ConfigError, IntegrityError
from tasks.forensic import copy_target
from tasks.recovery import pick_snapshot
from tasks.repos import flow_repositories, repository
from tasks.verify import verify_snapshot


@task(name="choose-immutable-tier", cache_policy=NO_CACHE)
def immutable_target(site: str, from_target: str | None) -> dict[str, Any]:
    """``from_target``, else the first of the site's secondary and tertiary targets whose
    storage keeps object lock; says whether the lock is there."""
    spec = StrongroomSite.load(site)
    candidates = [from_target] if from_target else [*spec.secondary, *spec.tertiary,
                                                    spec.primary]
    for name in candidates:
        with repository(name) as repo:
            locked = _lock_state(repo, next(iter(repo.snapshot_names()), None))
        if locked or from_target:
            return {"target": name, "object_lock": bool(locked)}
    return {"target": candidates[0], "object_lock": False}


def _lock_state(repo: Any, snapshot_id: str | None) -> str | None:
    """Object lock of a snapshot's manifest: ``COMPLIANCE until ...``, or None."""
    if not snapshot_id:
        return None
    info = repo.backend.head(f"snapshots/{snapshot_id}")
    if info is None or not info.lock_mode:
        return None
    until = info.retain_until.isoformat() if info.retain_until else "no date"
    return f"{info.lock_mode} until {until}"


@task(name="check-untouched", task_run_name="check-untouched-{source}", cache_policy=NO_CACHE)
def check_untouched(source: str, target: str, incident_at: str) -> dict[str, Any]:
    """The newest snapshot strictly before the incident; prove it unchanged since it was
    written: every blob read back against its checksum, the manifest's object lock (when
    the storage keeps one) still in force, and nothing written after the incident chosen."""
    src = load_source(source)
    moment = datetime.fromisoformat(incident_at)
    with repository(target) as repo:
        snap = pick_snapshot(repo.list_snapshots(src.source_name), "latest",
                             moment - timedelta(microseconds=1), src.source_name)
        check = verify_snapshot(repo, snap.id, "read-data")
        lock = _lock_state(repo, snap.id)
    if snap.time >= moment:
        raise IntegrityError(f"{src.source_name}: snapshot {snap.id[:8]} is not before the "
                             "incident")
    return {"source": source, "snapshot": snap.id, "time": snap.time.isoformat(),
            "checksums": check, "object_lock": lock}


@task(name="forensic-copy", task_run_name="forensic-{source}", cache_policy=NO_CACHE)
def forensic_copy(source: str, target: str, dest: str) -> str | None:
    """Snapshot the current state of what will be overwritten (``<name>-forensic``, tagged
    forensic), complete and read back; None when ``dest`` holds nothing."""
    src = load_source(source)
    with repository(target) as repo:
        snap = copy_target(repo, src, dest, "forensic")
    if snap is None:
        get_run_logger().info("no forensic copy of %s: it holds nothing", dest)
        return None
    get_run_logger().info("forensic copy of %s: snapshot %s, read back", dest, snap.short_id)
    return snap.id


@task(name="key-slots-to-revoke", cache_policy=NO_CACHE)
def slots_to_revoke(target: str, since: str, hosts: list[str]) -> list[dict[str, Any]]:
    """Key slots added at or after ``since`` (the recovery point: an attacker's key would be
    one) or created on a compromised host."""
    moment = datetime.fromisoformat(since)
    out = []
    with repository(target) as repo:
        for slot in repo.slots():
            why = []
            if slot.created >= moment:
                why.append(f"added {slot.created.isoformat()[:19]}, after the recovery point")
            if slot.host in hosts:
                why.append(f"created on compromised host {slot.host}")
            if why:
                out.append({"slot": slot.id, "type": str(slot.type), "label": slot.label,
                            "host": slot.host, "user": slot.user, "why": "; ".join(why),
                            "revoke": f"strongroom key remove {slot.id}"})
    return out


@flow(name="recover-incident", log_prints=True, timeout_seconds=RECOVERY_TIMEOUT_S)
def recover_incident(incident_at: datetime, site: str = "default",
                     sources: list[str] | None = None, from_target: str | None = None,
                     target_root: str | None = None, compromised_hosts: list[str] | None = None,
                     objectives: str | None = "default") -> dict[str, Any]:
    """Recover from a security incident: the newest recovery points before it, from the
    immutable tier, proven untouched, after a forensic copy of the current state.

    Args:
        incident_at: when the incident began (ISO 8601; UTC when no offset): every source
            returns to its newest snapshot strictly before this moment
        site: site block naming the sources and tiers
        sources: only these source blocks (kind/name); empty: every source of the site
        from_target: repository target to restore from; empty: the site's first target
            with object lock (secondary, then tertiary), else its first secondary
        target_root: restore each directory source under target_root/<name> instead of in
            place
        compromised_hosts: hosts whose key slots should be revoked
        objectives: recovery objectives block (the security class's RTO/RPO apply)
    """
    moment = datetime.fromisoformat(str(incident_at).replace("Z", "+00:00"))
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    try:
        spec = StrongroomSite.load(site)
    except ValueError:
        raise ConfigError(f"no site block named {site!r}") from None
    refs = list(sources or spec.sources)
    if not refs:
        raise ConfigError(f"site {site!r} has no sources")
    title = f"recover-incident-{site}"
    stages: dict[str, float] = {}
    forensic: dict[str, str | None] = {}
    dests: dict[str, str] = {}
    clock, stage = time.monotonic(), "assess"
    with flow_repositories():
        try:
            tier = immutable_target(site, from_target)
            load_target(tier["target"])
            dests = {ref: _dest(ref, target_root) for ref in refs}
            runs = [check_untouched.submit(ref, tier["target"], moment.isoformat())
                    for ref in refs]
            wait(runs)
            checks, failures = [], []
            for ref, run in zip(refs, runs, strict=True):
                try:
                    checks.append(run.result())
                except Exception as exc:  # noqa: BLE001 - every source's verdict is reported
                    failures.append((exc, f"{ref}: {one_line(exc)}"))
            if failures:
                raise stopped(failures[0][0], "; ".join(why for _, why in failures))
            stages[stage], clock, stage = round(time.monotonic() - clock, 3), \
                time.monotonic(), "forensic copy"
            for ref in refs:
                forensic[ref] = forensic_copy(ref, tier["target"], dests[ref])
            stages[stage] = round(time.monotonic() - clock, 3)
        except Exception as exc:
            stages[stage] = round(time.monotonic() - clock, 3)
            error = one_line(exc)
            left = ["nothing was changed: the recovery stopped before it overwrote anything "
                    "(every source is checked and every target copied first)"]
            left += [f"{ref}: forensic copy `{fid}` of {dests[ref]} (the state found)"
                     for ref, fid in forensic.items() if fid]
            left += [f"{ref}: nothing to copy at {dests[ref]}"
                     for ref, fid in forensic.items() if not fid]
            pm = failed_post_mortem(title, stages, error, stage, left, [])
            raise stopped(exc, f"{title} failed at {stage}, nothing was changed: {error} "
                               f"(post-mortem {pm})") from None
        jobs = []
        for ref, check in zip(refs, checks, strict=True):
            job = {"source": ref, "target": tier["target"], "dest": dests[ref],
                   "snapshot": check["snapshot"], "replace": True,
                   **runbook_job(ref, None, None, False)}
            job["options"] = load_source(ref).source().recovery_options(dests[ref])
            jobs.append(job)
        oldest = min(datetime.fromisoformat(c["time"]) for c in checks)
        revoke = slots_to_revoke(tier["target"], oldest.isoformat(),
                                 list(compromised_hosts or []))
        notes = [f"{c['source']}: recovery point `{c['snapshot'][:8]}` read back against its "
                 f"checksums; object lock: {c['object_lock'] or 'none'}" for c in checks]
        notes += [f"{ref}: forensic copy `{fid[:8]}` of the state found"
                  for ref, fid in forensic.items() if fid]
        if not tier["object_lock"]:
            notes.append(f"{tier['target']} keeps no object lock: the checksums alone show "
                         "the recovery points unmodified")
        notes += [f"revoke key slot {s['slot']} ({s['why']}): {s['revoke']}" for s in revoke]
        report = recover(f"recover-incident-{site}", jobs, objectives,
                         incident_at=moment.isoformat(), objective_class="security",
                         notes=notes)
    print("key slots to revoke: " + ("; ".join(f"{s['slot']} ({s['why']})" for s in revoke)
                                     or "none"))
    return {**report, "from": tier["target"], "object_lock": tier["object_lock"],
            "untouched": checks, "forensic": forensic, "revoke": revoke}


def _dest(ref: str, target_root: str | None) -> str:
    """Where ``ref`` is recovered: under ``target_root`` (directories only), else its block's
    restore target, else where it lives (in place)."""
    src = load_source(ref)
    if target_root and src.source().target_is_path:
        return str(Path(target_root) / src.source_name)
    if target_root:
        raise ConfigError(f"source {src.source_name} is a {src.source_kind} source: "
                          "target_root is for directories; leave it empty to recover every "
                          "source in place")
    dest = src.restore_target or src.source().in_place_target(src.settings())
    if not dest:
        raise ConfigError(f"no restore target for {ref}: set its restore_target")
    return dest
