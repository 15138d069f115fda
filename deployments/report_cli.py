"""``strongroom report``: an operations report from the Prefect API, on the command line.

Registered on the engine's CLI through the ``strongroom.cli`` entry-point group
(``report = "deployments.report_cli"``); prefect is imported only when the command runs. The
API is the one the shell's Prefect settings name (PREFECT_API_URL or the active profile, e.g.
``strongroom-local`` after ``strongroom up``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from strongroom.cli.app import app
from strongroom.errors import ConfigError, NotSupported

PeriodName = Literal["daily", "weekly", "monthly", "quarterly"]


@app.command("report")
def report_command(
    period: Annotated[str, typer.Option(
        "--period", "-p", help="daily (status), weekly (trends), monthly (analysis) or "
        "quarterly (review).")] = "weekly",
    html: Annotated[Path | None, typer.Option(
        "--html", help="Write the HTML report (charts embedded) here; default: "
        "<state dir>/reports/.")] = None,
    markdown: Annotated[bool, typer.Option(
        "--markdown", help="Also print the Markdown report.")] = False,
    site: Annotated[str | None, typer.Option(
        "--site", help="Site block to report on; default: the deployed report's (the "
        "platform file's site), else 'default'.")] = None,
    timezone: Annotated[str | None, typer.Option(
        "--timezone", help="Time zone of the times shown; default: the deployed report's (the "
        "platform's), else UTC.")] = None,
) -> None:
    """Render the operations report of a period from the Prefect API's run history, the
    site's repositories and the drill history."""
    import importlib.util
    import time

    if period not in ("daily", "weekly", "monthly", "quarterly"):
        raise ConfigError(f"--period must be daily, weekly, monthly or quarterly, not "
                          f"{period!r}")
    if importlib.util.find_spec("prefect") is None:
        raise NotSupported("strongroom report needs the orchestration extra (prefect is "
                           "missing): pip install -e '.[orchestration]'")
    from flows.reports import generate, render, write_html

    started = time.monotonic()
    deployed = deployed_parameters(period)
    site = site or deployed.get("site") or "default"
    timezone = timezone or deployed.get("timezone") or "UTC"
    data = generate(period, site, timezone)  # type: ignore[arg-type]
    text, page = render(data)
    path = write_html(page, data, html)
    if markdown:
        print(text)
    for note in data["notes"]:
        print(f"note: {note}")
    print(f"{data['title']} of {site} written to {path} in "
          f"{time.monotonic() - started:.1f} s")


def deployed_parameters(period: str) -> dict[str, Any]:
    """The parameters of the deployed ``report-<period>`` deployment (its site and the
    platform's time zone, saved at deploy time); {} when there is none."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    name = f"report-{period}/report-{period}"
    with get_client(sync_client=True) as client:
        try:
            return dict(client.read_deployment_by_name(name).parameters or {})
        except ObjectNotFound:
            return {}
