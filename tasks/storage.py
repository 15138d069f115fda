"""Storage-tier tasks: retention (forget + prune) on one target, and the 3-2-1 status report."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from blocks.loading import load_target
from tasks.retry import RETRYING

# Target block role -> repository tier of the retention defaults.
ROLE_TIER = {"primary": "primary", "secondary": "secondary", "tertiary": "archive"}


@task(name="retention", cache_policy=NO_CACHE, **RETRYING)
def apply_retention(target: str, dry_run: bool = False, grace_s: float = 3600.0
                    ) -> dict[str, Any]:
    """Forget by the seed's defaults for the target's tier, then prune (two-phase)."""
    from strongroom.repository.forget import forget, plan_for
    from strongroom.repository.prune import prune

    block = load_target(target)
    repo = block.open()
    try:
        tier = ROLE_TIER.get(block.role, "primary")
        report = forget(repo, plan_for(repo, tier=tier), dry_run=dry_run)
        pruned = None if dry_run else prune(repo, grace=timedelta(seconds=grace_s)).as_dict()
    finally:
        repo.close()
    return {"target": block.describe(), "tier": tier, "keep": len(report.plan.keep),
            "forget": len(report.plan.forget), "removed": len(report.removed),
            "skipped": report.skipped, "prune": pruned}


@task(name="storage-status", cache_policy=NO_CACHE, **RETRYING)
def storage_status(targets: list[str], home_site: str | None = None) -> dict[str, Any]:
    """The 3-2-1 verdict and utilisation over the named target blocks."""
    from strongroom.repository.status import RepoSpec, status

    blocks = {name: load_target(name) for name in targets}
    specs = [RepoSpec(url=b.url, tier=ROLE_TIER.get(b.role, "primary")) for b in blocks.values()]
    by_url = {b.url: b for b in blocks.values()}
    return status(specs, home_site=home_site, opener=lambda spec: by_url[spec.url].open())
