"""The backup seed's schedule table, as code (times in America/New_York)."""

from __future__ import annotations

SEED_TIMEZONE = "America/New_York"
ALL_CLASSES = ["database", "files", "system", "security"]

# name -> tier flow, cron, which classes of sources it covers, how long its snapshots are kept.
SEED_SCHEDULES: dict[str, dict] = {
    "daily-incremental": {"tier": "incremental", "cron": "0 2 * * *",
                          "classes": ALL_CLASSES, "keep": "14d"},
    "weekly-full": {"tier": "full", "cron": "0 1 * * 0", "classes": ALL_CLASSES, "keep": "4w"},
    # The seed gives no day for the differential: mid-week, an hour before the daily incremental.
    "weekly-differential": {"tier": "differential", "cron": "0 1 * * 3",
                            "classes": ALL_CLASSES, "keep": "2w"},
    "monthly-full": {"tier": "monthly_archive", "cron": "0 0 1 * *",
                     "classes": ALL_CLASSES, "keep": "12m"},
    "hourly-snapshot": {"tier": "snapshot", "cron": "0 * * * *",
                        "classes": ["database"], "keep": "7d"},
    # Continuous replication until WAL streaming lands: every 15 minutes.
    "continuous-replication": {"tier": "replication", "cron": "*/15 * * * *",
                               "classes": ["database"], "keep": "24h"},
}

# On-demand recovery deployments (no schedule): name -> flow.
RECOVERY_DEPLOYMENTS: dict[str, str] = {
    "recover-files": "recover_files",
    "recover-database": "recover_database",
    "disaster-recovery": "disaster_recovery",
}
