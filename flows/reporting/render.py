"""The report as Markdown (the Prefect artifact) and as one self-contained HTML file."""

from __future__ import annotations

import html
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flows.report import human_bytes, human_duration


def _pct(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x * 100:.{digits}f}%"


def _dur(x: float | None) -> str:
    return "n/a" if x is None else human_duration(x)


def _bytes(x: float | None) -> str:
    return "n/a" if x is None else human_bytes(x)


def _verdict(met: bool | None) -> str:
    return "no data" if met is None else ("met" if met else "MISSED")


def _local(t: datetime | None, tz: str) -> str:
    return "-" if t is None else t.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")


def sections(r: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of every table, shared by Markdown and HTML."""
    runs, t = r["runs"], r["targets"]
    out = [("Backups", ["measure", "value", "target", "result"], [
        ["runs finished", str(runs["runs"]), "", f"{runs['failed']} failed, "
         f"{runs['running']} not finished"],
        ["success rate", _pct(runs["success_rate"]), _pct(t["success_rate"], 1),
         _verdict(r["success_met"])],
        ["mean duration", _dur(runs["mean_duration_s"]), "", ""],
        ["p95 duration", _dur(runs["p95_duration_s"]), f"under {_dur(t['duration_s'])}",
         _verdict(r["duration_met"])],
        ["mean size (logical)", _bytes(r["size"]["mean_bytes"]),
         _bytes(t["size_bytes"]) if t["size_bytes"] else "none set",
         _verdict(r["size"]["within_target"]) if t["size_bytes"] else ""],
        ["mean new data stored", _bytes(r["size"]["mean_new_bytes"]), "", ""],
        ["snapshots", str(r["size"]["snapshots"]), "", ""]])]
    out.append(("Storage per tier", ["tier", "targets", "stored", "capacity", "used",
                                     "threshold"], [
        [tier, ", ".join(s["targets"]), _bytes(s["bytes"]),
         _bytes(s["capacity_bytes"]) if s["capacity_known"] else "unknown",
         _pct(s["used_ratio"], 1),
         "" if s["over_threshold"] is None else
         (f"ABOVE {t['capacity_ratio']:.0%}" if s["over_threshold"]
          else f"below {t['capacity_ratio']:.0%}")]
        for tier, s in r["storage"].items()] or [["-", "no repository read", "", "", "", ""]]))
    out.append(("Trends", ["measure", "trend", "change over window", "buckets"], [
        [name.replace("_", " "), tr["trend"],
         "" if tr["relative_change"] is None else f"{tr['relative_change'] * 100:+.1f}%",
         str(tr["points"])] for name, tr in r["trends"].items()]))
    rec = r["recovery"]
    last = rec["last"]
    rows = [["last drill", "none" if not last else
             f"{last['name']} ({last['scope']}) {_local(_parse(last['started']), r['timezone'])}"],
            ["result", "-" if not last else ("passed" if last["ok"] else
                                             f"FAILED: {last.get('error') or ''}")],
            ["measured RTO", "-" if not last else
             f"{_dur(last.get('rto_s'))} (objective {_dur(last.get('rto_objective_s'))})"],
            ["integrity verified", "-" if not last else ("yes" if last.get("verified")
                                                          else "no")],
            ["next drill due", rec["next_due"] or "not scheduled yet"],
            ["overdue or never drilled", ", ".join(rec["overdue"]) or "none"]]
    out.append(("Recovery testing", ["", ""], rows))
    if r.get("audit"):
        out.append(("Audit log", ["target", "records", "operations", "failed",
                                  "second factor refused", "from flow runs", "chain verified"],
                    audit_rows(r["audit"])))
    if r["failures"]:
        out.append(("Failures", ["run", "state", "started", "message"], [
            [f["name"], f["state"], _local(f["start"], r["timezone"]), f["message"][:120]]
            for f in r["failures"]]))
    return out


def audit_rows(audit: dict[str, dict[str, Any]]) -> list[list[str]]:
    """One row per target: its audit records in the period, by operation, failures, refused
    second-factor codes, records from flow runs, and whether the whole chain verifies."""
    rows = []
    for target, a in audit.items():
        if not a:
            rows.append([target, "not read", "", "", "", "", ""])
            continue
        ops = sorted(a["by_operation"].items(), key=lambda kv: (-kv[1], kv[0]))
        verdict = "yes" if a.get("verified") else \
            f"NO: {(a.get('problems') or ['?'])[0]}"
        rows.append([target, str(a["records"]), ", ".join(f"{op} {n}" for op, n in ops) or "-",
                     str(a.get("failed", 0)), str(a.get("second_factor_refusals", 0)),
                     str(a["from_flow_runs"]), verdict])
    return rows


def _parse(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(r: dict[str, Any]) -> str:
    """The Markdown artifact."""
    tz = r["timezone"]
    lines = [f"# {r['title']}: site {r['site']}", "",
             f"{_local(r['since'], tz)} to {_local(r['until'], tz)} ({tz})", ""]
    lines += [f"> {n}" for n in r["notes"]] + ([""] if r["notes"] else [])
    for title, header, rows in sections(r):
        lines += [f"## {title}", "", "| " + " | ".join(header) + " |",
                  "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
        lines.append("")
    lines.append(f"Trends: fitted slope over the window; under "
                 f"{r['targets']['trend_threshold']:.0%} change relative to the mean is stable.")
    return "\n".join(lines)


STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:60em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.3em .7em;
text-align:left}th{background:#f3f3f3}.note{background:#fff8e1;border-left:4px solid #f9a825;
padding:.4em .8em}.charts{display:grid;grid-template-columns:1fr 1fr;gap:.5em}
.charts figure{margin:0}.charts img{width:100%;border:1px solid #eee}.MISSED,.ABOVE{color:#c62828;
font-weight:bold}"""


def to_html(r: dict[str, Any], charts: dict[str, str]) -> str:
    """A self-contained HTML page: the tables and the charts embedded as data URIs."""
    tz = r["timezone"]
    esc = html.escape
    parts = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
             f"<title>Strongroom {esc(r['title'])}: {esc(r['site'])}</title>",
             f"<style>{STYLE}</style></head><body>",
             f"<h1>Strongroom {esc(r['title'])}: site {esc(r['site'])}</h1>",
             f"<p>{esc(_local(r['since'], tz))} to {esc(_local(r['until'], tz))} "
             f"({esc(tz)})</p>"]
    parts += [f"<p class='note'>{esc(n)}</p>" for n in r["notes"]]
    parts.append("<div class='charts'>")
    parts += [f"<figure><img class='chart' alt='{esc(title)}' src='{uri}'></figure>"
              for title, uri in charts.items()]
    parts.append("</div>")
    for title, header, rows in sections(r):
        parts.append(f"<h2>{esc(title)}</h2><table><tr>"
                     + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>")
        for row in rows:
            parts.append("<tr>" + "".join(
                f"<td class='{esc(c.split()[0]) if c else ''}'>{esc(c)}</td>" for c in row)
                + "</tr>")
        parts.append("</table>")
    parts.append(f"<p>Trends: a line fitted to the per-bucket values; a change under "
                 f"{r['targets']['trend_threshold']:.0%} of the mean over the window is "
                 "stable.</p></body></html>")
    return "\n".join(parts)
