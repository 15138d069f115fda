"""The Typer application objects every CLI module registers its commands on."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from strongroom import hostid

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


def version_text() -> str:
    """``strongroom X.Y.Z`` (with the Python it runs on), as ``--version`` prints it."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    try:
        ours = version("strongroom")
    except PackageNotFoundError:  # run from a checkout that was never installed
        ours = "unknown"
    return f"strongroom {ours} (Python {platform.python_version()} on {platform.system()})"


def _show_version(value: bool) -> None:
    if value:
        print(version_text())
        raise typer.Exit(0)


@app.callback()
def main_options(
    version: Annotated[bool, typer.Option(
        "--version", "-V", is_eager=True, callback=_show_version,
        help="Print the version and exit.")] = False,
    host_id: Annotated[str | None, typer.Option(
        "--host-id", envvar="STRONGROOM_HOST_ID", show_envvar=True,
        help="This host's id in locks and snapshots (default: a random id kept in the state "
             "directory's host-id file; host names are not unique).")] = None,
) -> None:
    """Encrypted, deduplicated backups that restore with just the repository and the key."""
    if host_id:
        os.environ["STRONGROOM_HOST_ID"] = host_id  # read by strongroom.hostid (and children)
        hostid.host_id.cache_clear()
        hostid.host_id()  # a malformed id is bad input now, not in the middle of a backup
