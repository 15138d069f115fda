"""``strongroom migrate``: bring a repository to the current format in place (no data rewritten)."""

from __future__ import annotations

from strongroom.cli.app import app
from strongroom.cli.common import (
    JsonOpt,
    KeyFileOpt,
    OptionOpt,
    PasswordFileOpt,
    RepoOpt,
    open_repo,
)
from strongroom.cli.output import console, emit_json
from strongroom.repository.migrate import migrate as migrate_repository


@app.command("migrate")
def migrate(repo: RepoOpt = None, password_file: PasswordFileOpt = None,
            key_file: KeyFileOpt = None, option: OptionOpt = None, json: JsonOpt = False
            ) -> None:
    """Migrate a format-1 repository to format 2 (data-key epochs) in place; the same keys open
    it afterwards, and nothing already stored is rewritten."""
    r = open_repo(repo, password_file, key_file, option)  # its audit record names it
    report = migrate_repository(r)
    if json:
        emit_json({"from": report.from_version, "to": report.to_version,
                   "migrated": report.migrated})
    elif report.migrated:
        console.print(f"migrated {r.url} from format {report.from_version} to "
                      f"{report.to_version}: new data is sealed under epoch 1, older data "
                      "stays readable under epoch 0", markup=False)
    else:
        console.print(f"{r.url} is already format {report.to_version}; nothing to do",
                      markup=False)
