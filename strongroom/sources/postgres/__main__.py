"""``python -m strongroom.sources.postgres ...`` runs the strongroom CLI (when no script is
installed, PostgreSQL's archive/restore commands use this)."""

from strongroom.cli import main

main()
