"""Save the platform file's blocks (keys, targets, sources, policies, site) and source limits."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr, ValidationError

from deployments.config import PlatformConfig, parse_objective
from strongroom.errors import ConfigError


def source_refs(config: PlatformConfig) -> dict[str, str]:
    """Source name -> block reference (``files/docs``)."""
    return {name: f"{src.kind}/{name}" for name, src in config.sources.items()}


def register_platform(config: PlatformConfig) -> dict[str, Any]:
    """Register block types, save one block document per key/target/source/policy, the site
    block and the objectives; create one concurrency limit per source; the alerts (notification
    blocks and automations, see deployments/alerts.py)."""
    import blocks
    from blocks import (
        RecoveryObjectives,
        RepositoryTarget,
        RetentionPolicy,
        S3Credentials,
        StrongroomSite,
    )
    from blocks.sources import SOURCE_BLOCKS
    from deployments.key_specs import key_block
    from flows.limits import ensure_limits

    blocks.register_all()
    secret = lambda v: SecretStr(v) if v is not None else None  # noqa: E731
    for name, tgt in config.targets.items():
        key = config.keys[tgt.key]
        s3 = {"endpoint_url": tgt.endpoint_url, "region": tgt.region,
              "access_key_id": secret(tgt.access_key_id),
              "secret_access_key": secret(tgt.secret_access_key)}
        RepositoryTarget(
            url=tgt.url, role=tgt.role,
            credentials=S3Credentials(**s3) if any(v is not None for v in s3.values()) else None,
            options={k: str(v) for k, v in tgt.options.items()},
            key=key_block(key),
        ).save(name, overwrite=True)
    for name, src in config.sources.items():
        cls = SOURCE_BLOCKS.get(src.kind)
        if cls is None:
            raise ConfigError(f"source {name}: no Prefect block type for kind {src.kind!r} "
                              f"(block types: {', '.join(sorted(SOURCE_BLOCKS))})")
        try:
            block = cls(source_name=name, objective_class=config.source_class(name),
                        restore_target=src.restore_target, runs_on=src.runs_on,
                        **src.settings())
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err.get("loc", ()))
            raise ConfigError(f"source {name}: {where}: {err.get('msg')}") from None
        block.save(name, overwrite=True)
    for name, sched in config.schedules.items():
        RetentionPolicy(keep_within=sched.keep).save(f"retention-{name}", overwrite=True)
    objectives = RecoveryObjectives(**{f"{cls}_{what}": parse_objective(value)
                                       for cls, pair in config.objectives.items()
                                       for what, value in pair.items()})
    objectives.save("default", overwrite=True)
    refs = source_refs(config)
    replicas = config.replicas()
    StrongroomSite(sources=list(refs.values()), primary=config.primary,
                   secondary=[n for n in replicas if config.targets[n].role == "secondary"],
                   tertiary=[n for n in replicas if config.targets[n].role == "tertiary"],
                   objectives="default").save(config.site, overwrite=True)
    limits = ensure_limits(refs.values())
    from deployments.recovery_specs import save_runbook  # stop commands, smoke checks

    save_runbook(config)
    from deployments.alerts import apply_alerts

    alerts = apply_alerts(config)  # notification blocks and one automation per alert
    return {"targets": list(config.targets), "sources": list(refs.values()),
            "site": config.site, "limits": limits, "alerts": alerts}
