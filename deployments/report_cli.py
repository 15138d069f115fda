"""``strongroom report``: an operations report from the Prefect API, on the command line.

Registered on the engine's CLI through the ``strongroom.cli`` entry-point group
(``report = "deployments.report_cli"``); prefect is imported only when the command runs. The
API is the one the shell's Prefect settings name (PREFECT_API_URL or the active profile, e.g.
``strongroom-local`` after ``strongroom up``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

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
    site: Annotated[str, typer.Option("--site", help="Site block to report on.")] = "default",
    timezone: Annotated[str, typer.Option(
        "--timezone", help="Time zone of the times shown (the platform's).")] = "UTC",
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
    data = generate(period, site, timezone)  # type: ignore[arg-type]
    text, page = render(data)
    path = write_html(page, data, html)
    if markdown:
        print(text)
    for note in data["notes"]:
        print(f"note: {note}")
    print(f"{data['title']} of {site} written to {path} in "
          f"{time.monotonic() - started:.1f} s")
