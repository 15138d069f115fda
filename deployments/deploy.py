"""``python -m deployments.deploy --config FILE --work-pool NAME [--create-pool]``.

Registers the platform's blocks and limits, then the same deployments ``deployments.serve``
serves, on a work pool instead: one work queue per host (a source's ``runs_on``), so that
``prefect worker start --pool NAME --work-queue HOST`` on each host runs that host's backups and
restores. Sources that name no host go to the pool's ``default`` queue, as do disaster recovery,
retention and verification. Workers import the flows from the installed ``strongroom`` package
(module entrypoints, no pull steps): install it on every host.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from deployments.build import DEFAULT_QUEUE, build_pool_deployments, pool_specs
from deployments.config import PlatformConfig, load_config
from deployments.register import register_platform
from strongroom.errors import ConfigError, StrongroomError


async def ensure_pool(pool: str, queues: list[str], create: bool) -> str:
    """Check (or with ``create``: create) the work pool and one queue per host; its type."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
    from prefect.workers.process import ProcessWorker

    async with get_client() as client:
        try:
            work_pool = await client.read_work_pool(pool)
        except ObjectNotFound:
            if not create:
                raise ConfigError(f"work pool {pool!r} does not exist: pass --create-pool, or "
                                  f"prefect work-pool create {pool} --type process") from None
            work_pool = await client.create_work_pool(WorkPoolCreate(
                name=pool, type="process", description="Strongroom backups and restores",
                base_job_template=ProcessWorker.get_default_base_job_template()))
        for queue in queues:
            try:
                await client.create_work_queue(name=queue, work_pool_name=pool,
                                               description=f"Strongroom sources on {queue}")
            except ObjectAlreadyExists:
                pass
        return work_pool.type


def deploy(config: PlatformConfig, pool: str, create_pool: bool = False) -> list[dict[str, Any]]:
    """Register blocks, the pool's queues and every deployment; one row per deployment."""
    register_platform(config)
    specs = pool_specs(config)
    queues = sorted({s["work_queue"] for s in specs.values()} - {DEFAULT_QUEUE})
    asyncio.run(ensure_pool(pool, queues, create_pool))
    rows = []
    for dep in build_pool_deployments(config, pool):
        dep.apply()
        spec = specs[dep.name]
        rows.append({"deployment": f"{dep.flow_name}/{dep.name}", "queue": spec["work_queue"],
                     "cron": spec["schedules"][0]["cron"] if spec["schedules"] else None,
                     "sources": spec["parameters"].get("sources")})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deployments.deploy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="platform YAML file")
    parser.add_argument("--work-pool", required=True, help="work pool name")
    parser.add_argument("--create-pool", action="store_true",
                        help="create the pool (type process) if it does not exist")
    parser.add_argument("--strict", action="store_true",
                        help="refuse a platform file whose schedules cannot meet its RPOs")
    args = parser.parse_args(argv)
    try:
        rows = deploy(load_config(args.config, strict=args.strict), args.work_pool,
                      args.create_pool)
    except StrongroomError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    width = max(len(r["deployment"]) for r in rows)
    for r in rows:
        sources = ", ".join(r["sources"] or []) if r["sources"] is not None else ""
        print(f"{r['deployment']:<{width}}  queue {r['queue']:<12} {r['cron'] or 'on demand':<14}"
              f" {sources}".rstrip())
    queues = sorted({r["queue"] for r in rows})
    print(f"registered {len(rows)} deployments on work pool {args.work_pool!r}; on each host:")
    for queue in queues:
        print(f"  prefect worker start --pool {args.work_pool} --work-queue {queue}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
