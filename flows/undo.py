"""Undo a recovery: put back the pre-recovery state its post-mortem records.

A path target's previous contents, kept beside it by the restore, are swapped back (what the
recovery had put there is kept beside it in turn, ``<target>.undone-<time>``); any other
target is restored from the safety snapshot taken before it was overwritten, through the usual
five stages (so the undo itself takes a safety snapshot first and can be undone).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import Artifact, create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from blocks.loading import load_source
from flows.recovery import RECOVERY_TIMEOUT_S, recover
from strongroom.errors import ConfigError
from strongroom.sources import swap
from tasks import runbook
from tasks.progress import artifact_key
from tasks.repos import flow_repositories
from tasks.undo import UndoPlan, UndoStep


@task(name="put-back", task_run_name="put-back-{step.source}", cache_policy=NO_CACHE)
def put_back(step: UndoStep) -> list[str]:
    """Stop the service (the step's stop command), then swap each kept directory back."""
    done = []
    if step.stop_command:
        done.append(runbook.stop_service(step.stop_command, step.dest))
    missing = []
    for kept in step.kept:
        target = swap.kept_target(Path(kept))
        if not (Path(kept).exists() or Path(kept).is_symlink()):
            missing.append(kept)
            continue
        with swap.target_lock(target):
            if kept in step.kept_only:
                moved = swap.put_back_entries(target, Path(kept), step.kept_only[kept],
                                              swap.stamp())
            else:
                moved = swap.put_back(target, Path(kept), swap.stamp())
        done.append(f"{target}: put back from {kept}" + (
            f"; what the recovery had put there is now {moved}" if moved else ""))
        get_run_logger().info(done[-1])
    if missing:
        raise ConfigError(f"{step.source}: {', '.join(missing)} is gone (removed, or already "
                          f"put back); put back: {'; '.join(done) or 'nothing'}")
    return done


@flow(name="undo-recovery", log_prints=True, timeout_seconds=RECOVERY_TIMEOUT_S)
def undo_recovery(post_mortem: str, sources: list[str] | None = None,
                  objectives: str | None = "default") -> dict[str, Any]:
    """Put back what a recovery replaced, as its post-mortem artifact records.

    Args:
        post_mortem: key of the recovery's post-mortem artifact (success or failure), e.g.
            post-mortem-recover-files-docs
        sources: only these source blocks (kind/name); empty: every source it replaced
        objectives: recovery objectives block for the undo's own post-mortem
    """
    found = Artifact.get(post_mortem)
    if found is None:
        raise ConfigError(f"no artifact {post_mortem!r}: give the key of a recovery's "
                          "post-mortem")
    plan = UndoPlan.parse(str(found.data or ""))
    steps = [s for s in plan.steps if s.possible and (not sources or s.source in sources)]
    if not steps:  # nothing was replaced: done, not failed (no alert for a no-op)
        print(f"{post_mortem} records nothing to undo"
              + (f" for {', '.join(sources)}" if sources else ""))
        return {"title": plan.title, "put_back": {}, "restored": [], "post_mortem": None,
                "nothing_to_undo": True}
    done: dict[str, list[str]] = {}
    for step in steps:
        if step.kept:
            done[step.source] = put_back(step)
    jobs = [{"source": s.source, "target": s.repository, "dest": s.dest,
             "snapshot": s.safety_snapshot, "replace": True, "fresh_backup": False,
             "stop_command": s.stop_command,
             "options": s.options | load_source(s.source).source().undo_options()}
            for s in steps if s.safety_snapshot and not s.kept]
    report: dict[str, Any] = {}
    if jobs:
        with flow_repositories():
            report = recover(f"undo-{plan.title}", jobs, objectives)
    lines = [f"# Undo of `{plan.title}`", "", f"From post-mortem `{post_mortem}`.", ""]
    lines += [f"* {src}: {line}" for src, out in done.items() for line in out]
    lines += [f"* {j['source']}: restored safety snapshot `{j['snapshot'][:8]}` into "
              f"{j['dest']} (post-mortem `{report.get('artifact_key')}`)" for j in jobs]
    create_markdown_artifact("\n".join(lines), key=artifact_key("undo", plan.title),
                             description=f"Undo of {plan.title}")
    return {"title": plan.title, "put_back": done,
            "restored": [j["source"] for j in jobs], "post_mortem": report.get("artifact_key")}
