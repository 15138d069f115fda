"""``python -m deployments.serve --config FILE``: register the platform and serve its deployments.

One process, no Docker, no work pool (``prefect.serve``); for several hosts put the same
deployments on a work pool with ``python -m deployments.deploy`` instead.
"""

from __future__ import annotations

import argparse
import sys

from deployments.build import build_deployments
from deployments.config import load_config
from deployments.register import register_platform
from strongroom.errors import StrongroomError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deployments.serve", description=__doc__)
    parser.add_argument("--config", help="platform YAML file")
    parser.add_argument("--list", action="store_true",
                        help="print the server's deployments with their schedules, then exit")
    parser.add_argument("--register-only", action="store_true",
                        help="register blocks, limits and deployments, then exit")
    parser.add_argument("--strict", action="store_true",
                        help="refuse a platform file whose schedules cannot meet its RPOs")
    args = parser.parse_args(argv)
    if args.list:
        from deployments.listing import deployment_rows, format_rows

        print(format_rows(deployment_rows()))
        return 0
    if not args.config:
        parser.error("--config is required")
    try:
        config = load_config(args.config, strict=args.strict)
        registered = register_platform(config)
        deployments = build_deployments(config)
    except StrongroomError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    alerts = registered.get("alerts") or {}
    print(f"alerts: {len(alerts.get('created', []))} automations created, "
          f"{len(alerts.get('updated', []))} updated, {len(alerts.get('kept', []))} unchanged, "
          f"{len(alerts.get('deleted', []))} removed; channels: "
          f"{', '.join(alerts.get('channels', [])) or 'none'}", flush=True)
    if args.register_only:
        for dep in deployments:
            dep.apply()
        print(f"registered {len(deployments)} deployments")
        return 0
    from prefect import serve

    serve(*deployments, print_starting_message=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
