"""Markdown for the artifacts: backup summaries and recovery post-mortems."""

from __future__ import annotations

from datetime import timedelta
from typing import Any


def human_bytes(n: float | None) -> str:
    n = float(n or 0)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def human_duration(seconds: float | None) -> str:
    s = float(seconds or 0)
    if s < 60:
        return f"{s:.1f} s"
    return str(timedelta(seconds=round(s)))


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def backup_markdown(tier: str, source: str, snap: dict[str, Any] | None,
                    steps: dict[str, dict[str, Any]], replicas: list[dict[str, Any]],
                    primary: str, error: str | None = None) -> str:
    """Summary of one tier run: snapshot, sizes, new bytes, durations per step, targets."""
    status = "FAILED" if error else "completed"
    out = [f"# {tier} backup of `{source}`: {status}", ""]
    if error:
        out += [f"**Error:** {error}", ""]
    if snap:
        st = snap.get("stats", {})
        out += [_table(["snapshot", "kind", "parent", "files", "read", "new", "stored",
                        "time (UTC)"],
                       [[f"`{snap['short_id']}`", snap["kind"],
                         f"`{(snap.get('parent') or '-')[:8]}`", st.get("files", 0),
                         human_bytes(st.get("bytes_read")), human_bytes(st.get("bytes_new")),
                         human_bytes(st.get("bytes_stored")), snap["time"][:19]]]), "",
                f"Full id: `{snap['id']}`", ""]
    if steps:
        out += ["## Steps", "", _table(["step", "duration", "result"],
                                       [[name, human_duration(r.get("duration_s")),
                                         _summary(r)] for name, r in steps.items()]), ""]
    rows = [["primary", primary, "written", "-"]]
    for rep in replicas:
        if rep.get("skipped"):
            rows.append([rep["target"].split()[0], rep["target"], "skipped", rep["skipped"]])
        else:
            rows.append([rep["target"].split()[0], rep["target"], "copied and verified",
                         human_duration(rep.get("duration_s"))])
    out += ["## Targets", "", _table(["role", "target", "state", "note"], rows)]
    return "\n".join(out)


def _summary(report: dict[str, Any]) -> str:
    keys = ("files", "bytes_read", "new_blobs", "blobs_checked", "packs_read", "mode",
            "sealed_bytes")
    parts = [f"{k}={report[k]}" for k in keys if k in report]
    return ", ".join(parts) or "ok"


def human_span(seconds: float | None) -> str:
    """A duration in one unit fitting its size: ``2.6 s``, ``15 min``, ``2 h``, ``1.5 d``."""
    s = float(seconds or 0)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            value = s / size
            return f"{value:.0f} {unit}" if abs(value - round(value)) < 0.05 else \
                f"{value:.1f} {unit}"
    return f"{s:.1f} s"


def _verdict(measured: float | None, objective: float | None) -> str:
    if measured is None:
        return "**not met** (recovery failed)"
    if objective is None:
        return "-"
    return "met" if measured <= objective else "**MISSED**"


def source_table(r: dict[str, Any]) -> str:
    """One source's short table: measured against objective, met or missed, in one unit
    style (``2.6 s of 2 h``), three columns so it reads at 1600 px without scrolling."""
    rto = r.get("rto_s")
    rows = [["RTO", f"{human_span(rto)} of {human_span(r['rto_objective_s'])}"
             if rto is not None else f"none of {human_span(r['rto_objective_s'])}",
             _verdict(rto, r["rto_objective_s"])],
            ["RPO", f"{human_span(r['rpo_s'])} of {human_span(r['rpo_objective_s'])}",
             _verdict(r["rpo_s"] if rto is not None else None, r["rpo_objective_s"])],
            ["recovery point", f"{r.get('recovery_point_time', r['snapshot_time'])[:23]} UTC: "
             f"{r.get('recovery_point', 'snapshot as taken')}", ""],
            ["snapshot", f"`{r['snapshot'][:8]}` of {r['snapshot_time'][:19]} UTC, "
             f"{human_bytes(r.get('bytes'))}", ""],
            ["restored to", f"`{r.get('dest', '-')}`", ""],
            ["estimate", human_span(r.get("estimate_s")), ""]]
    if r.get("restored"):
        rows.append(["written", ", ".join(
            f"{k} {human_bytes(v) if k == 'bytes' else v}" for k, v in r["restored"].items()),
            ""])
    if r.get("verified"):
        rows.append(["data check", f"verified {r['verified']}", "ok"])
    for line in r.get("smoke") or []:
        rows.append(["smoke check", line.rsplit(": ", 1)[0], "ok"])
    if r.get("safety_snapshot"):
        rows.append(["safety snapshot", f"`{r['safety_snapshot'][:8]}` (target before the "
                     "restore)", ""])
    fresh = r.get("fresh_backup")
    if isinstance(fresh, dict) and fresh.get("snapshot"):
        rows.append(["fresh backup", f"`{fresh['snapshot'][:8]}` read back in full",
                     "backup functionality verified"])
    elif isinstance(fresh, dict) and fresh.get("error"):
        rows.append(["fresh backup", fresh["error"][:120], "**backup functionality NOT "
                     "verified**"])
    return _table(["", f"`{r['source']}` ({r.get('class', '-')})", "verdict"], rows)


def post_mortem_markdown(title: str, stages: dict[str, float],
                         results: list[dict[str, Any]], anomalies: list[str],
                         error: str | None = None, failed_stage: str | None = None,
                         left_behind: list[str] | None = None) -> str:
    """Outcome, one short table per source (RTO/RPO measured against objectives first),
    stage timings, what a failure left behind, anomalies."""
    status = f"FAILED at {failed_stage}" if error and failed_stage else (
        "FAILED" if error else "completed")
    total = sum(v for k, v in stages.items() if k != "post-mortem")
    out = [f"# Post-mortem: {title} ({status})", ""]
    if error:
        out += [f"**Error ({failed_stage or 'recovery'}):** {error}", "",
                "**No recovery time objective was met: the recovery did not complete.**", ""]
    else:
        out += [f"Recovered in {human_span(total)} (measured RTO: assess to verify).", ""]
    for r in results:
        out += [source_table(r), ""]
    if left_behind:
        out += ["## Left behind", "", *[f"- {item}" for item in left_behind], ""]
    out += ["## Stages", "", _table(["stage", "duration"],
                                   [[name, human_span(sec)] for name, sec in stages.items()]
                                   + [["**total (measured RTO)**" if not error else
                                       "**total until the failure**", human_span(total)]]), ""]
    basis = sorted({r["estimate_basis"] for r in results if r.get("estimate_basis")})
    if basis:
        out += [f"Estimates from {', '.join(basis)}.", ""]
    out += ["## Anomalies", ""]
    out += [f"- {a}" for a in anomalies] if anomalies else ["- none"]
    return "\n".join(out)
