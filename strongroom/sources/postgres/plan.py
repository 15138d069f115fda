"""Planning a physical restore before anything is touched: the recovery target, the base
backup that reaches it, the timeline to follow, and the WAL it needs (no server, no driver)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from strongroom.errors import ConfigError, IntegrityError, SnapshotNotFound
from strongroom.repository import Snapshot
from strongroom.sources.postgres import walnames as wn
from strongroom.sources.postgres import walstore
from strongroom.sources.postgres.backups import BASE_KINDS, pg_meta


@dataclass
class Target:
    """A recovery target: latest | immediate | time | lsn | xid | name."""

    kind: str = "latest"
    value: str | None = None
    inclusive: bool = True
    timeline: str | None = None  # None: the newest timeline descending from the base

    @classmethod
    def from_options(cls, o: dict[str, Any]) -> Target:
        given = [(k, o[f"target_{k}"]) for k in ("time", "lsn", "xid", "name")
                 if o.get(f"target_{k}")]
        if len(given) > 1:
            raise ConfigError("give only one of --target-time/--target-lsn/--target-xid/"
                              "--target-name")
        tl = str(o["target_timeline"]) if o.get("target_timeline") else None
        incl = str(o.get("inclusive", "true")).lower() not in ("0", "false", "no")
        if given:
            kind, value = given[0]
            t = cls(kind, str(value), incl, tl)
            t.check()
            return t
        kind = str(o.get("target", "latest"))
        if kind not in ("latest", "immediate", "snapshot"):
            raise ConfigError(f"unknown recovery target {kind!r} (latest, immediate or "
                              "snapshot)")
        return cls(kind, None, incl, tl)

    def check(self) -> None:
        try:
            if self.kind == "time":
                self.when()
            elif self.kind == "lsn":
                wn.parse_lsn(self.value or "")
            elif self.kind == "xid":
                int(self.value or "")
        except ValueError:
            raise ConfigError(f"invalid recovery target {self.kind}: {self.value!r}") from None

    def when(self) -> datetime:
        t = datetime.fromisoformat(str(self.value).replace("Z", "+00:00"))
        return t if t.tzinfo else t.replace(tzinfo=UTC)

    def settings(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.kind == "immediate":
            out["recovery_target"] = "immediate"
        elif self.kind == "time":
            out["recovery_target_time"] = self.when().isoformat(sep=" ")
        elif self.kind in ("lsn", "xid", "name"):
            out[f"recovery_target_{self.kind}"] = str(self.value)
        if self.kind in ("time", "lsn", "xid"):
            out["recovery_target_inclusive"] = "on" if self.inclusive else "off"
        if self.kind not in ("latest", "snapshot"):
            out["recovery_target_action"] = "promote"
        return out


def choose_base(snaps: list[Snapshot], target: Target, name: str) -> Snapshot:
    """The newest backup that is consistent before the target (time, LSN, xid); the oldest
    for a restore point name (its position is unknown until replay)."""
    if not snaps:
        raise SnapshotNotFound(f"no physical backup of {name!r} in the repository")
    fulls = [s for s in snaps if s.kind in BASE_KINDS] or snaps
    if target.kind in ("latest", "immediate", "snapshot"):
        return snaps[-1] if target.kind == "latest" else fulls[-1]
    if target.kind == "name":
        return fulls[0]
    if target.kind == "time":
        when = target.when()
        ok = [s for s in fulls if datetime.fromisoformat(pg_meta(s)["stop_time"]) <= when]
        oldest = datetime.fromisoformat(pg_meta(fulls[0])["stop_time"])
        what = f"time {when.isoformat()}"
        first = f"consistent at {oldest.isoformat()}"
    elif target.kind == "lsn":
        lsn = wn.parse_lsn(target.value or "")
        ok = [s for s in fulls if wn.parse_lsn(pg_meta(s)["stop_lsn"]) <= lsn]
        what = f"LSN {target.value}"
        first = f"consistent at LSN {pg_meta(fulls[0])['stop_lsn']}"
    else:  # xid: transactions numbered at or after the stop's next xid commit after it
        xid = int(target.value or 0)
        ok = [s for s in fulls if int(pg_meta(s).get("next_xid", 0)) % (1 << 32) <= xid]
        what = f"xid {xid}"
        first = f"next xid {int(pg_meta(fulls[0]).get('next_xid', 0)) % (1 << 32)}"
    if not ok:
        raise SnapshotNotFound(f"recovery target {what} is before the oldest backup of "
                               f"{name!r} ({fulls[0].short_id}, {first})")
    return ok[-1]


def choose_timeline(base: Snapshot, catalog: walstore.WalCatalog,
                    wanted: str | None) -> tuple[int, list[tuple[int, int]]]:
    """The recovery timeline and its path; only timelines that descend from the base."""
    histories = catalog.histories()
    meta = pg_meta(base)
    btli, bstart = int(meta["timeline"]), wn.parse_lsn(meta["stop_lsn"])

    def descends(tli: int) -> bool:
        path = wn.timeline_path(tli, histories)
        return any(t == btli and bstart < end for t, end in path)

    if wanted and wanted not in ("latest", "current"):
        tli = int(wanted)
        if not descends(tli):
            raise ConfigError(f"timeline {tli} does not descend from backup {base.short_id} "
                              f"(timeline {btli} at {meta['stop_lsn']})")
    elif wanted == "current":
        tli = btli
    else:
        tli = max([t for t in set(histories) | {btli} if descends(t)])
    return tli, wn.timeline_path(tli, histories)


def check_wal(base: Snapshot, catalog: walstore.WalCatalog, path: list[tuple[int, int]],
              target: Target, own: set[str]) -> dict[str, Any]:
    """Find gaps in the WAL a restore needs before touching anything; name the segment."""
    meta = pg_meta(base)
    seg = int(meta["wal_segment_size"])
    end = None
    if target.kind == "lsn":
        end = max(wn.parse_lsn(target.value or "0/0"), wn.parse_lsn(meta["stop_lsn"]))
    elif target.kind in ("immediate", "snapshot"):
        end = wn.parse_lsn(meta.get("wal_end_lsn") or meta["stop_lsn"])
    start = wn.parse_lsn(meta["start_lsn"])
    if meta.get("wal_in_tar") and target.kind == "immediate" and not meta.get("base_snapshot"):
        return {"missing": [], "first": wn.segment_name(path[-1][0], start // seg, seg)}
    extra = dict(catalog.files) if target.kind != "snapshot" else {}
    for fname in own:
        extra.setdefault(fname, None)  # type: ignore[arg-type]
    view = walstore.WalCatalog(catalog.repo, catalog.name, [])
    view.files, view.seg_size = extra, seg  # type: ignore[assignment]
    missing, last = walstore.missing_segments(view, start, end, path, seg)
    if missing:
        raise IntegrityError(f"WAL archive of {catalog.name!r} has a gap: segment {missing[0]} "
                             f"is missing ({len(missing)} missing between the backup and the "
                             "target)")
    return {"missing": [], "first_segment": start // seg, "last_segment": last}
