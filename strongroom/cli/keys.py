"""``strongroom key``: add, list, remove and change key slots without touching data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from strongroom.cli.app import key_app
from strongroom.cli.common import (
    JsonOpt,
    KeyFileOpt,
    OptionOpt,
    PasswordFileOpt,
    RepoOpt,
    open_repo,
)
from strongroom.cli.output import console, emit_json
from strongroom.crypto.slots import read_keyfile, write_new_keyfile
from strongroom.errors import ConfigError
from strongroom.repository.repo import read_password_file

NewPwOpt = Annotated[Path | None, typer.Option(
    "--new-password-file", help="File holding the new password.")]
NewKeyOpt = Annotated[Path | None, typer.Option(
    "--new-key-file", help="Key file for the new slot (created if it does not exist).")]


def _new_secret(new_password_file: Path | None, new_key_file: Path | None
                ) -> tuple[str, bytes]:
    if new_password_file and new_key_file:
        raise ConfigError("give either --new-password-file or --new-key-file, not both")
    if new_key_file:
        if not new_key_file.exists():
            write_new_keyfile(new_key_file)
        return "keyfile", read_keyfile(new_key_file)
    if new_password_file:
        pw = read_password_file(new_password_file)
    else:
        import getpass
        import sys

        if not sys.stdin.isatty():
            raise ConfigError("give --new-password-file or --new-key-file")
        pw = getpass.getpass("new password: ")
        if getpass.getpass("repeat new password: ") != pw:
            raise ConfigError("passwords do not match")
    if not pw:
        raise ConfigError("the new password is empty")
    return "password", pw.encode()


@key_app.command("add")
def key_add(new_password_file: NewPwOpt = None, new_key_file: NewKeyOpt = None,
            label: Annotated[str, typer.Option(help="A note for this slot.")] = "",
            repo: RepoOpt = None, password_file: PasswordFileOpt = None,
            key_file: KeyFileOpt = None, option: OptionOpt = None,
            json: JsonOpt = False) -> None:
    """Add a key slot (password or key file) for the same master key."""
    r = open_repo(repo, password_file, key_file, option)
    slot_type, secret = _new_secret(new_password_file, new_key_file)
    slot = r.add_slot(slot_type, secret, label)  # type: ignore[arg-type]
    if json:
        emit_json({"id": slot.id, "type": slot.type})
    else:
        console.print(f"added {slot.type} key slot {slot.id}")


@key_app.command("list")
def key_list(repo: RepoOpt = None, password_file: PasswordFileOpt = None,
             key_file: KeyFileOpt = None, option: OptionOpt = None,
             json: JsonOpt = False) -> None:
    """List key slots; the one in use is marked."""
    r = open_repo(repo, password_file, key_file, option)
    rows = [{"id": s.id, "type": s.type, "label": s.label, "created": s.created.isoformat(),
             "host": s.host, "user": s.user, "current": s.id == r.slot_id} for s in r.slots()]
    if json:
        emit_json(rows)
        return
    table = Table("", "id", "type", "label", "created", "host", "user")
    for row in rows:
        table.add_row("*" if row["current"] else "", str(row["id"]), str(row["type"]),
                      str(row["label"]), str(row["created"])[:19], str(row["host"]),
                      str(row["user"]))
    console.print(table)


@key_app.command("remove")
def key_remove(slot_id: Annotated[str, typer.Argument(help="Slot id or unique prefix.")],
               repo: RepoOpt = None, password_file: PasswordFileOpt = None,
               key_file: KeyFileOpt = None, option: OptionOpt = None) -> None:
    """Remove a key slot (never the last one, never the one in use)."""
    r = open_repo(repo, password_file, key_file, option)
    r.remove_slot(slot_id)
    console.print(f"removed key slot {slot_id}")


@key_app.command("passwd")
def key_passwd(new_password_file: NewPwOpt = None, repo: RepoOpt = None,
               password_file: PasswordFileOpt = None, key_file: KeyFileOpt = None,
               option: OptionOpt = None) -> None:
    """Change the password of the slot in use (a new slot replaces it)."""
    r = open_repo(repo, password_file, key_file, option)
    if next((s.type for s in r.slots() if s.id == r.slot_id), None) != "password":
        raise ConfigError("the repository was opened with a key file, not a password: open it "
                          "with the password to change (key add/remove manage key files)")
    slot_type, secret = _new_secret(new_password_file, None)
    old = r.slot_id
    slot = r.add_slot(slot_type, secret, "passwd")  # type: ignore[arg-type]
    r.backend.delete(f"keys/{old}")
    console.print(f"password changed: slot {old} replaced by {slot.id}")
