"""Continuous WAL replication of a PostgreSQL source, as a long-running supervised flow.

One ``replication-<source>`` deployment per PostgreSQL source runs :func:`wal_replication`: it
starts the WAL receiver (``pg_receivewal`` through a replication slot, each segment stored in
the primary repository as it completes, the open segment every ``copy_every_s``), checks its
health every ``check_every_s`` seconds, restarts it with back-off when it dies, reports the lag
as a ``strongroom.replication.lag`` event (resource ``strongroom.source.<name>``, payload
``lag_s``, ``rpo_s``, ``breached``) and copies the WAL to the secondary tier at least every
``copy_every_s``; every few minutes it checks the archive's continuity and raises
``strongroom.wal.gap`` once per new gap (:class:`tasks.walgaps.WalGapWatch`). Cancelling the
run (or SIGTERM) stops the receiver cleanly: the open segment is stored and copied before the
flow ends.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Annotated, Any

from prefect import flow
from prefect.events import emit_event
from prefect.logging import get_run_logger
from pydantic import Field

from blocks.loading import load_source, load_target
from blocks.policies import RecoveryObjectives
from strongroom.errors import ConfigError
from strongroom.sources.postgres.lag import LagClock
from tasks.walgaps import WalGapWatch

LAG_EVENT = "strongroom.replication.lag"
BREACH_EVENT = "strongroom.replication.rpo-breached"
DEFAULT_SPOOL = Path("/var/tmp/strongroom-wal")


def resource(name: str) -> dict[str, str]:
    return {"prefect.resource.id": f"strongroom.source.{name}",
            "prefect.resource.name": name, "strongroom.kind": "postgres"}


class Supervised:
    """The receiver in a thread; :meth:`check` restarts it with back-off when it died."""

    def __init__(self, make: Any, max_backoff: float = 60.0) -> None:
        self.make = make
        self.max_backoff = max_backoff
        self.receiver: Any = None
        self.thread: threading.Thread | None = None
        self.failure: str | None = None
        self.restarts = 0
        self.backoff = 1.0
        self.restart_at = 0.0

    def _run(self) -> None:
        try:
            self.receiver.run()
        except Exception as exc:  # noqa: BLE001 - reported by check(), then restarted
            self.failure = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]

    def start(self) -> None:
        self.failure = None
        self.receiver = self.make()
        self.thread = threading.Thread(target=self._run, name="wal-receiver", daemon=True)
        self.thread.start()

    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def check(self) -> str | None:
        """Restart a dead receiver once its back-off ran out; what happened, if anything."""
        if self.alive():
            if self.receiver.last_status.get("streaming"):
                self.backoff = 1.0
            return None
        now = time.monotonic()
        if self.restart_at == 0.0:
            self.restart_at = now + self.backoff
            why = self.failure or "receiver stopped"
            self.backoff = min(self.backoff * 2, self.max_backoff)
            return f"receiver down ({why}); restarting in {self.restart_at - now:.0f} s"
        if now >= self.restart_at:
            self.restart_at = 0.0
            self.restarts += 1
            self.start()
            return f"receiver restarted (restart {self.restarts})"
        return None

    def stop(self, timeout: float = 60.0) -> dict[str, Any]:
        if self.receiver is not None:
            self.receiver.stop()
        if self.thread is not None:
            self.thread.join(timeout)
        return dict(self.receiver.last_status) if self.receiver is not None else {}


def copy_wal(primary: str, secondaries: list[str], name: str) -> dict[str, Any]:
    """Copy the cluster's WAL snapshots the secondaries lack (fresh repository handles: the
    receiver thread writes through its own)."""
    from strongroom.repository.copy import copy_snapshots
    from strongroom.sources.postgres.walstore import wal_source

    copied = {}
    src = load_target(primary).open()
    try:
        if not src.list_snapshots(wal_source(name)):
            return {t: 0 for t in secondaries}
        for target in secondaries:
            dst = load_target(target).open(create=True)
            try:
                result = copy_snapshots(src, dst, source_name=wal_source(name))
                copied[target] = len(result.get("copied", []))
            finally:
                dst.close()
    finally:
        src.close()
    return copied


def _rpo_s(objectives: str | None, objective_class: str) -> float:
    try:
        objs = RecoveryObjectives.load(objectives) if objectives else RecoveryObjectives()
    except ValueError:
        objs = RecoveryObjectives()
    return objs.for_class(objective_class).rpo.total_seconds()


@flow(name="wal-replication", log_prints=True)
def wal_replication(
    source: Annotated[str, Field(description="PostgreSQL source block, postgres/NAME")],
    primary: Annotated[str, Field(description="repository target the WAL is stored in as "
                                  "it arrives")] = "primary",
    secondaries: Annotated[list[str] | None, Field(
        description="targets the WAL is copied to within copy_every_s")] = None,
    copy_every_s: Annotated[float, Field(
        description="longest time WAL may sit only on the primary (also how often the open "
        "segment is stored)", gt=0)] = 60.0,
    check_every_s: Annotated[float, Field(description="health check and lag report "
                                          "interval", gt=0)] = 5.0,
    spool: Annotated[str | None, Field(description="local directory for the segment being "
                                       "received; kept across restarts")] = None,
    objectives: Annotated[str | None, Field(description="recovery objectives block; the lag "
                                            "is compared with the source class's RPO")]
    = "default",
    run_for_s: Annotated[float | None, Field(description="stop after this many seconds "
                                             "(empty: until cancelled)")] = None,
) -> dict[str, Any]:
    """Stream a PostgreSQL source's WAL into the repository and keep the receiver alive."""
    from strongroom.sources.postgres.conn import Dsn
    from strongroom.sources.postgres.receiver import Receiver

    log = get_run_logger()
    src = load_source(source)
    if src.source_kind != "postgres":
        raise ConfigError(f"{source} is a {src.source_kind} source: only PostgreSQL streams "
                          "WAL")
    settings = src.settings()
    if str(settings.get("method") or "physical") != "physical":
        raise ConfigError(f"{source} is backed up logically: WAL replication needs "
                          "method physical")
    name = src.source_name
    dsn = Dsn({"host": str(settings.get("host") or "127.0.0.1"),
               "port": str(settings.get("port") or 5432),
               "user": str(settings.get("user") or "postgres"), "dbname": "postgres"},
              settings.get("password"))
    spool_dir = Path(spool) if spool else DEFAULT_SPOOL / name
    rpo = _rpo_s(objectives, src.objectives_class())
    repo = load_target(primary).open(create=True)
    supervised = Supervised(lambda: Receiver(repo, dsn, name, spool_dir,
                                             status_interval=check_every_s,
                                             partial_interval=copy_every_s))
    clock = LagClock()
    gaps = WalGapWatch(primary, name)  # strongroom.wal.gap when the archive loses a segment
    targets = list(secondaries or [])
    started = time.monotonic()
    next_copy = started + copy_every_s
    last_copy = started
    breached = False
    lag: float | None = None
    summary: dict[str, Any] = {"source": name, "restarts": 0, "copies": 0, "copy_errors": 0,
                               "max_lag_s": 0.0, "breaches": 0}
    supervised.start()
    log.info("replicating %s: WAL into %s, copied to %s within %.0f s; RPO %.0f s", name,
             primary, ", ".join(targets) or "no secondary", copy_every_s, rpo)
    try:
        while run_for_s is None or time.monotonic() - started < run_for_s:
            time.sleep(check_every_s)
            event = supervised.check()
            if event:
                log.warning("%s: %s", name, event)
            status = supervised.receiver.last_status if supervised.receiver else {}
            lag = clock.observe(status.get("server_lsn"), status.get("received_lsn"))
            if lag is None and not supervised.alive():
                lag = round(time.monotonic() - (clock.caught_up_at or started), 3)
            now = time.monotonic()
            if targets and now >= next_copy:
                try:
                    copy_wal(primary, targets, name)
                    summary["copies"] += 1
                    last_copy = now
                except Exception as exc:  # noqa: BLE001 - retried next round
                    summary["copy_errors"] += 1
                    log.warning("%s: copying WAL to the secondary tier failed (retrying): "
                                "%s", name, str(exc).splitlines()[0][:300])
                next_copy = now + copy_every_s
            gaps.poll(log)
            payload = {"lag_s": lag, "rpo_s": rpo, "breached": lag is not None and lag > rpo,
                       "streaming": bool(status.get("streaming")),
                       "receive_lag_bytes": status.get("receive_lag_bytes"),
                       "server": status.get("server"), "restarts": supervised.restarts,
                       "secondary_age_s": round(now - last_copy, 1) if targets else None}
            emit_event(event=LAG_EVENT, resource=resource(name), payload=payload)
            if payload["breached"] and not breached:
                summary["breaches"] += 1
                emit_event(event=BREACH_EVENT, resource=resource(name), payload=payload)
                log.error("%s: replication lag %.0f s is over the RPO of %.0f s", name,
                          lag or 0, rpo)
            breached = bool(payload["breached"])
            summary["max_lag_s"] = max(summary["max_lag_s"], lag or 0.0)
    finally:
        final = supervised.stop()
        summary["restarts"] = supervised.restarts
        if targets:
            try:
                copy_wal(primary, targets, name)
            except Exception as exc:  # noqa: BLE001 - the WAL is safe on the primary
                log.warning("%s: final copy to the secondary tier failed: %s", name,
                            str(exc).splitlines()[0][:300])
        repo.close()
        summary["final"] = {k: final.get(k) for k in ("segments_stored", "partials_stored",
                                                      "last_segment", "archived_lsn",
                                                      "received_lsn", "server_lsn")}
        log.info("replication of %s stopped cleanly: %s", name, summary["final"])
    return summary
