"""Storage flows: retention on every tier, and the 3-2-1 check with a utilisation report."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from tasks.notify import notify
from tasks.progress import artifact_key
from tasks.storage import apply_retention, storage_status


@flow(name="retention", log_prints=True)
def retention(targets: list[str], dry_run: bool = False, grace_s: float = 3600.0,
              policies: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Forget, then prune, on each target: per host, source and schedule by the configured
    policy (``policies``: schedule tag -> retention policy block), else the seed's per-tier
    default; time rules count back from the storage's clock.

    Args:
        targets: repository target blocks to apply retention on (primary, secondary, ...)
        dry_run: only report what would be forgotten and pruned; change nothing
        grace_s: seconds an unreferenced pack stays before prune deletes it (a backup that
            is writing it still finds it)
        policies: schedule tag (incremental, monthly-archive, ...) -> retention policy block;
            empty: the seed's default per tier
    """
    results = [apply_retention(t, dry_run, grace_s, policies) for t in targets]
    rows = "\n".join(f"| {r['target']} | {r['tier']} | {r['keep']} | {r['forget']} | "
                     f"{(r['prune'] or {}).get('bytes_freed', 0)} | {len(r['skipped'])} |"
                     for r in results)
    create_markdown_artifact(
        "# Retention\n\n| target | tier | kept | forgotten | bytes freed | skipped (locked) |\n"
        f"|---|---|---|---|---|---|\n{rows}\n\n| target | host | source | schedule | policy | "
        "kept | forgotten |\n|---|---|---|---|---|---|---|\n"
        + "\n".join(f"| {r['target']} | {g.get('host') or '-'} | {g['source']} | "
                    f"{g['schedule']} | {g['policy']} | {g['keep']} | {g['forget']} |"
                    for r in results for g in r["groups"]),
        key=artifact_key("retention", "all"))
    return results


def status_markdown(report: dict[str, Any]) -> str:
    """The 3-2-1 verdict and utilisation as a markdown artifact."""
    verdict = "ok" if report["ok"] else "BROKEN"
    lines = [f"# 3-2-1 check: {verdict}", "", "| source | copies | media | off-site | ok |",
             "|---|---|---|---|---|"]
    lines += [f"| {s['source']} | {s['copies']} | {s['media']} | {s['offsite']} | {s['ok']} |"
              for s in report["sources"]]
    if report["failing"]:
        lines += ["", "**Failing:**", ""] + [f"- {f}" for f in report["failing"]]
    lines += ["", "| repository | tier | bytes | dedup | growth 7d |", "|---|---|---|---|---|"]
    lines += [f"| {r['url']} | {r['tier']} | {r.get('bytes', {}).get('total')} | "
              f"{r.get('dedup_ratio')} | {r.get('growth_bytes', {}).get('7d')} |"
              for r in report["repositories"]]
    return "\n".join(lines)


@flow(name="three-two-one", log_prints=True)
def three_two_one(targets: list[str], home_site: str | None = None) -> dict[str, Any]:
    """Report copies per source over the targets; fail (after the report) if 3-2-1 is broken.

    Args:
        targets: repository target blocks that hold the copies (every tier)
        home_site: the site the sources live in (a copy elsewhere counts as off-site); empty:
            the first target's site
    """
    report = storage_status(targets, home_site)
    create_markdown_artifact(status_markdown(report), key=artifact_key("status", "3-2-1"))
    if not report["ok"]:
        summary = "3-2-1 rule broken: " + "; ".join(report["failing"])
        notify("storage.321-broken", "storage", summary, {"failing": report["failing"]},
               level="error")
        raise RuntimeError(summary)
    return report
