"""Options shared by every command that opens a repository."""

from __future__ import annotations

import getpass
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer

from strongroom.crypto.unlock import Unlocker, unlock_configured, unlockers_from_env
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


# A secret on a command line shows in `ps`, shell history and the command's own report.
SECRET_OPTIONS = {"password": "password_env=VAR or password_file=FILE",
                  "secret_access_key": "AWS_SECRET_ACCESS_KEY or an AWS profile",
                  "session_token": "AWS_SESSION_TOKEN or an AWS profile"}


def parse_options(items: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError("an --option is not key=value (its text is not shown: it may "
                              "hold a secret)")
        key = key.strip().replace("-", "_")
        if key.removeprefix("aws_") in SECRET_OPTIONS:
            raise ConfigError(f"option {key} would put a secret on the command line (visible "
                              f"in ps and shell history): use "
                              f"{SECRET_OPTIONS[key.removeprefix('aws_')]}")
        out[key] = value
    return out


def no_password_in_url(url: str, what: str) -> None:
    """Refuse a URL given on the command line with a password in it (ps, history, reports)."""
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    # a libpq key=value DSN ("host=db1 password=x") is refused too
    if password or re.search(r"(^|\s)password\s*=", url):
        raise ConfigError(f"{what} holds a password, which would show in ps, shell history and "
                          "the report: put it in an environment variable (PGPASSWORD, "
                          "--password-env, --restore-option password_env=VAR)")


def get_password(password_file: Path | None, key_file: Path | None, confirm: bool = False
                 ) -> str | None:
    """Password from --password-file, STRONGROOM_PASSWORD, or a prompt on a terminal."""
    if password_file:
        return read_password_file(password_file)
    if "STRONGROOM_PASSWORD" in os.environ:
        return os.environ["STRONGROOM_PASSWORD"]
    if key_file or unlock_configured():  # a token, KMS or escrow key named in the environment
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


def open_unrecorded(repo: str | None, password_file: Path | None = None,
                    key_file: Path | None = None, options: list[str] | None = None,
                    extra: Sequence[Unlocker] = ()) -> Repository:
    """Open the repository named on the command line or in the environment with a password or
    key file and any token, KMS or escrow key named in ``extra`` or the environment (tried
    after the password and key file); the command leaves no audit record of its own."""
    unlockers = [*extra, *unlockers_from_env()]
    if unlockers:  # the password is optional then: no prompt, no error without one
        password = read_password_file(password_file) if password_file else \
            os.environ.get("STRONGROOM_PASSWORD")
    else:
        password = get_password(password_file, key_file)
    return Repository.open(repo_url(repo), password, key_file, parse_options(options),
                           unlockers)


def open_repo(repo: str | None, password_file: Path | None = None,
              key_file: Path | None = None, options: list[str] | None = None,
              extra: Sequence[Unlocker] = ()) -> Repository:
    """:func:`open_unrecorded`, and the command's audit record names the repository."""
    from strongroom.cli._audit import command_opened

    r = open_unrecorded(repo, password_file, key_file, options, extra)
    command_opened(r)
    return r
