"""The Typer application objects every CLI module registers its commands on."""

from __future__ import annotations

from typing import Annotated

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
) -> None:
    """Encrypted, deduplicated backups that restore with just the repository and the key."""
