"""The Typer application objects every CLI module registers its commands on."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="strongroom",
    help="Encrypted, deduplicated backups that restore with just the repository and the key.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
backup_app = typer.Typer(help="Back up a source into a new snapshot.", no_args_is_help=True)
key_app = typer.Typer(help="Manage the key slots that wrap the repository's master key.",
                      no_args_is_help=True)
app.add_typer(backup_app, name="backup")
app.add_typer(key_app, name="key")
