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


def post_mortem_markdown(title: str, stages: dict[str, float],
                         results: list[dict[str, Any]], anomalies: list[str],
                         error: str | None = None) -> str:
    """Timings per stage, measured RTO/RPO against objectives, what was restored, anomalies."""
    status = "FAILED" if error else "completed"
    out = [f"# Post-mortem: {title} ({status})", ""]
    if error:
        out += [f"**Error:** {error}", ""]
    total = sum(stages.values())
    out += ["## Stages", "", _table(["stage", "duration"],
                                   [[name, human_duration(sec)] for name, sec in stages.items()]
                                   + [["**total (measured RTO)**", human_duration(total)]]), ""]
    rows = []
    for r in results:
        rows.append([f"`{r['source']}`", f"`{r['snapshot'][:8]}`", r["snapshot_time"][:19],
                     human_bytes(r.get("bytes")), r.get("dest", "-"),
                     human_duration(r.get("estimate_s")),
                     f"{human_duration(r['rto_s'])} / {human_duration(r['rto_objective_s'])} "
                     f"{'met' if r['rto_s'] <= r['rto_objective_s'] else 'MISSED'}",
                     f"{human_duration(r['rpo_s'])} / {human_duration(r['rpo_objective_s'])} "
                     f"{'met' if r['rpo_s'] <= r['rpo_objective_s'] else 'MISSED'}"])
    if rows:
        out += ["## Restored", "", _table(["source", "snapshot", "recovery point (UTC)", "size",
                                           "restored to", "estimate", "RTO measured / objective",
                                           "RPO measured / objective"], rows), ""]
    written = [f"- `{r['source']}`: "
               + ", ".join(f"{k} {human_bytes(v) if k == 'bytes' else v}"
                           for k, v in r["restored"].items())
               + (f"; verified {r['verified']}" if r.get("verified") else "")
               for r in results if r.get("restored")]
    if written:
        out += ["What was written:", "", *written, ""]
    safety = [f"- `{r['source']}`: `{r['safety_snapshot'][:8]}` (state before the restore)"
              for r in results if r.get("safety_snapshot")]
    if safety:
        out += ["## Safety snapshots", "", *safety, ""]
    basis = sorted({r["estimate_basis"] for r in results if r.get("estimate_basis")})
    if basis:
        out += [f"Estimates from {', '.join(basis)}.", ""]
    out += ["## Anomalies", ""]
    out += [f"- {a}" for a in anomalies] if anomalies else ["- none"]
    return "\n".join(out)
