"""The report flow and ``strongroom report`` against a real Prefect API: backup runs read
through the client API, the site's repositories, a Markdown artifact and the HTML file."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.prefect.conftest import (
    backup_one,
    backup_state,
    make_tree,
    save_files_source,
    save_local_target,
)


def test_weekly_report_from_the_run_history(prefect_harness, tmp_path, names, monkeypatch):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.settings import PREFECT_API_URL

    from blocks import StrongroomSite
    from flows.reports import report

    monkeypatch.setenv("STRONGROOM_STATE_DIR", str(tmp_path / "state"))
    target = save_local_target(f"t-{names}", tmp_path / "repo")
    ref = save_files_source(f"rep-{names}", [make_tree(tmp_path / "data", 5)])
    backup_one("full", ref, primary=target)
    backup_one("incremental", ref, primary=target)
    # a source of another site fails on the same Prefect API
    other = save_files_source(f"other-{names}", [tmp_path / "missing"])
    elsewhere = save_local_target(f"o-{names}", tmp_path / "other-repo")
    assert backup_state("full", other, primary=elsewhere).is_failed()
    StrongroomSite(sources=[ref], primary=target).save(f"site-{names}", overwrite=True)

    result = report(period="weekly", site=f"site-{names}", timezone="Europe/Paris")

    # this site's two backups only, not the failed run of the other source
    assert result["runs"] == 2 and result["success_rate"] == 1.0
    html = tmp_path / "state" / "reports"
    assert [p.name for p in html.iterdir()][0].startswith(f"weekly-site-{names}-")
    page = (html / next(html.iterdir()).name).read_text()
    assert page.count("<img class='chart'") == 4 and "Europe/Paris" in page
    assert f"rep-{names}" in page  # never drilled: listed as overdue
    with get_client(sync_client=True) as client:
        art = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=["report-weekly"])))
    assert art and "## Backups" in art[-1].data and "100.00%" in art[-1].data
    # audit activity of the period: the two flow backups, all from flow runs, chain verified
    assert "## Audit log" in art[-1].data and "<h2>Audit log</h2>" in page
    row = next(line for line in art[-1].data.splitlines() if line.startswith(f"| {target} |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert "backup 2" in cells[2] and cells[3] == "0" and cells[4] == "0", cells
    assert int(cells[5]) == int(cells[1]) >= 3 and cells[6] == "yes", cells

    out = tmp_path / "cli.html"
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    proc = subprocess.run([sys.executable, "-c", "from strongroom.cli import main; main()",
                           "report", "--period", "daily",
                           "--site", f"site-{names}", "--html", str(out), "--markdown"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "# Daily status" in proc.stdout and f"written to {out}" in proc.stdout
    assert out.read_text().count("<img class='chart'") == 4


def test_report_command_defaults_to_the_deployed_site_and_time_zone(prefect_harness, names):
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    from deployments.report_cli import deployed_parameters
    from flows.reports import report_monthly

    with get_client(sync_client=True) as client:  # another test may have deployed it
        try:
            client.delete_deployment(
                client.read_deployment_by_name("report-quarterly/report-quarterly").id)
        except ObjectNotFound:
            pass
    assert deployed_parameters("quarterly") == {}  # nothing deployed: 'default' and UTC
    report_monthly.to_deployment(
        "report-monthly", parameters={"period": "monthly", "site": f"site-{names}",
                                      "timezone": "Asia/Tokyo"}).apply()
    params = deployed_parameters("monthly")
    assert params["site"] == f"site-{names}" and params["timezone"] == "Asia/Tokyo"
