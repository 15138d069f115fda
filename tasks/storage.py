"""Storage-tier tasks: retention (forget + prune) on one target, and the 3-2-1 status report."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from blocks.loading import load_target
from strongroom.errors import ConfigError
from tasks.audit import run_context
from tasks.retry import RETRYING

# Target block role -> repository tier of the retention defaults.
ROLE_TIER = {"primary": "primary", "secondary": "secondary", "tertiary": "archive"}


def load_policies(policies: dict[str, str] | None) -> dict[str, Any]:
    """Schedule tag (``incremental``, ``monthly-archive``, ...) -> engine retention policy,
    from the named retention policy blocks (the platform file's ``keep`` values)."""
    from blocks.policies import RetentionPolicy as PolicyBlock

    out: dict[str, Any] = {}
    for schedule, block_name in (policies or {}).items():
        try:
            block = PolicyBlock.load(block_name)
        except ValueError:
            raise ConfigError(f"no retention policy block named {block_name!r} (register the "
                              "platform first)") from None
        out[schedule.replace("_", "-")] = block.build()
    return out


@task(name="retention", cache_policy=NO_CACHE, **RETRYING)
def apply_retention(target: str, dry_run: bool = False, grace_s: float = 3600.0,
                    policies: dict[str, str] | None = None) -> dict[str, Any]:
    """Forget, per host, source and schedule, by the configured policy (``policies``: schedule
    tag -> retention policy block) or else the seed's default for the target's tier, counting
    back from the storage's clock; then prune (two-phase). A policy stored in the repository
    (``strongroom policy set``) replaces both, and its minimum grace applies: no second factor
    is needed for it. Snapshots tagged ``legal-hold`` are never forgotten, nor future-dated ones
    (see :mod:`strongroom.policy.retention`)."""
    from strongroom.policy.retention import TIER_GROUP_BY, plan_retention, tier_policy
    from strongroom.policy.stored import load_policy
    from strongroom.repository.forget import forget
    from strongroom.repository.prune import prune

    configured = load_policies(policies)
    block = load_target(target)
    tier = ROLE_TIER.get(block.role, "primary")

    def policy_for(key: dict[str, Any]) -> Any:
        schedule = key.get("schedule") or ""
        if tier == "archive" and schedule == "full":  # long-term storage keeps monthly fulls
            return tier_policy(tier, schedule)
        return configured.get(schedule) or tier_policy(tier, schedule)

    repo = block.open()
    try:
        with run_context():
            # A policy stored in the repository (strongroom policy set) wins: it is what the
            # second factor guards, so automation applies it without one.
            stored = load_policy(repo)
            grace = timedelta(seconds=grace_s)
            if stored is not None:
                grace = max(grace, stored.min_grace_delta())
            plan = plan_retention(repo.list_snapshots(),
                                  stored.rule_for if stored is not None else policy_for,
                                  group_by=TIER_GROUP_BY, now=repo.storage_now())
            report = forget(repo, plan, dry_run=dry_run)
            pruned = None if dry_run else prune(repo, grace=grace).as_dict()
    finally:
        repo.close()
    groups = [{"host": g.key.get("host"), "source": g.key.get("source_name"),
               "schedule": g.key.get("schedule"),
               "policy": g.policy.describe(), "keep": len(g.keep), "forget": len(g.forget)}
              for g in plan.groups]
    return {"target": block.describe(), "tier": tier,
            "policy": "stored" if stored is not None else "configured", "keep": len(plan.keep),
            "forget": len(plan.forget), "removed": len(report.removed),
            "skipped": report.skipped, "groups": groups, "prune": pruned}


@task(name="storage-status", cache_policy=NO_CACHE, **RETRYING)
def storage_status(targets: list[str], home_site: str | None = None) -> dict[str, Any]:
    """The 3-2-1 verdict and utilisation over the named target blocks."""
    from strongroom.repository.status import RepoSpec, status

    blocks = {name: load_target(name) for name in targets}
    specs = [RepoSpec(url=b.url, tier=ROLE_TIER.get(b.role, "primary")) for b in blocks.values()]
    by_url = {b.url: b for b in blocks.values()}
    return status(specs, home_site=home_site, opener=lambda spec: by_url[spec.url].open())
