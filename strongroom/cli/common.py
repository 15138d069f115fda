"""Options shared by every command that opens a repository."""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from strongroom.errors import ConfigError
from strongroom.repository import Repository
from strongroom.repository.repo import read_password_file

RepoOpt = Annotated[str | None, typer.Option(
    "--repo", "-r", envvar="STRONGROOM_REPOSITORY", show_envvar=True,
    help="Repository: a path or s3://bucket/prefix.")]
PasswordFileOpt = Annotated[Path | None, typer.Option(
    "--password-file", envvar="STRONGROOM_PASSWORD_FILE", show_envvar=True,
    help="File holding the password (or set STRONGROOM_PASSWORD).")]
KeyFileOpt = Annotated[Path | None, typer.Option(
    "--key-file", envvar="STRONGROOM_KEYFILE", show_envvar=True,
    help="Key file to open the repository with instead of a password.")]
OptionOpt = Annotated[list[str] | None, typer.Option(
    "--option", "-o", help="Backend option key=value (e.g. endpoint=http://127.0.0.1:9000).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def parse_options(items: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"option {item!r} is not key=value")
        out[key.strip().replace("-", "_")] = value
    return out


def get_password(password_file: Path | None, key_file: Path | None, confirm: bool = False
                 ) -> str | None:
    """Password from --password-file, STRONGROOM_PASSWORD, or a prompt on a terminal."""
    if password_file:
        return read_password_file(password_file)
    if "STRONGROOM_PASSWORD" in os.environ:
        return os.environ["STRONGROOM_PASSWORD"]
    if key_file:
        return None
    if sys.stdin.isatty():
        pw = getpass.getpass("repository password: ")
        if confirm and getpass.getpass("repeat password: ") != pw:
            raise ConfigError("passwords do not match")
        return pw
    raise ConfigError("no password given (set STRONGROOM_PASSWORD, --password-file or "
                      "--key-file)")


def repo_url(repo: str | None) -> str:
    if not repo:
        raise ConfigError("no repository given (set STRONGROOM_REPOSITORY or --repo)")
    return repo


def open_repo(repo: str | None, password_file: Path | None = None,
              key_file: Path | None = None, options: list[str] | None = None) -> Repository:
    """Open the repository named on the command line or in the environment."""
    url = repo_url(repo)
    return Repository.open(url, get_password(password_file, key_file), key_file,
                           parse_options(options))
