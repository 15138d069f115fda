"""``strongroom migrate``: bring a repository to the current format in place (no data rewritten)."""

from __future__ import annotations

import os

from strongroom.cli._audit import command_opened
from strongroom.cli.app import app
from strongroom.cli.common import (
    JsonOpt,
    KeyFileOpt,
    OptionOpt,
    PasswordFileOpt,
    RepoOpt,
    get_password,
    parse_options,
    repo_url,
)
from strongroom.cli.output import console, emit_json
from strongroom.crypto.unlock import unlockers_from_env
from strongroom.repository import Repository
from strongroom.repository.migrate import migrate as migrate_repository
from strongroom.repository.repo import read_password_file


@app.command("migrate")
def migrate(repo: RepoOpt = None, password_file: PasswordFileOpt = None,
            key_file: KeyFileOpt = None, option: OptionOpt = None, json: JsonOpt = False
            ) -> None:
    """Migrate a format-1 repository to format 2 (data-key epochs) in place; the same keys open
    it afterwards, and nothing already stored is rewritten."""
    unlockers = unlockers_from_env()
    if unlockers:
        password = read_password_file(password_file) if password_file else \
            os.environ.get("STRONGROOM_PASSWORD")
    else:
        password = get_password(password_file, key_file)
    r = Repository.open(repo_url(repo), password, key_file, parse_options(option), unlockers)
    command_opened(r)  # the audit record of this command
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
