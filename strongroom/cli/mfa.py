"""``strongroom mfa``: enrol, check and disable the second factor (TOTP); the ``--otp`` option
and the checks other commands call before destroying data (forget, prune, key remove, key
retire, key rotate --reencrypt, policy set)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

import typer

from strongroom import mfa
from strongroom.cli.app import app
from strongroom.cli.common import (
    JsonOpt,
    KeyFileOpt,
    OptionOpt,
    PasswordFileOpt,
    RepoOpt,
)
from strongroom.cli.common import open_repo as _open
from strongroom.cli.output import console, emit_json, err_console

OtpOpt = Annotated[str | None, typer.Option(
    "--otp", help="Second-factor code (TOTP) when the repository requires one for this "
    "operation (asked on a terminal when missing).")]

mfa_app = typer.Typer(help="A second factor (TOTP) for destructive operations.",
                      no_args_is_help=True)
app.add_typer(mfa_app, name="mfa")

_code: str | None = None  # the running command's --otp, for checks deep in the engine


def use_code(otp: str | None) -> None:
    """Remember the command's ``--otp`` for engine checks (``key retire``, ``--reencrypt``)."""
    global _code
    _code = otp


def _engine_check(repo: Any, action: str) -> None:
    mfa.ask_if_needed(repo, action, _code)


def _install_engine_check() -> None:
    from strongroom.repository import reencrypt

    reencrypt.SECOND_FACTOR = _engine_check


_install_engine_check()


def check_forget(repo: Any, plan: Any, otp: str | None) -> None:
    """A forget removing a snapshot the stored policy keeps needs the second factor."""
    if not mfa.enabled(repo):
        return
    from strongroom.policy.stored import beyond_policy, load_policy

    extra = beyond_policy(repo, plan, load_policy(repo))
    if extra:
        mfa.ask_if_needed(repo, f"forget beyond the stored policy ({len(extra)} snapshot(s) "
                          "it keeps)", otp)


def check_prune(repo: Any, grace: timedelta, otp: str | None) -> None:
    """A prune with a grace below the stored minimum (default 1h) needs the second factor."""
    if not mfa.enabled(repo):
        return
    from strongroom.policy.stored import StoredPolicy, load_policy

    minimum = (load_policy(repo) or StoredPolicy()).min_grace_delta()
    if grace < minimum:
        mfa.ask_if_needed(repo, f"prune with a grace below the stored minimum ({minimum})", otp)


@mfa_app.command("enable")
def mfa_enable(
    account: Annotated[str | None, typer.Option(help="Account name shown by the "
                                                "authenticator app.")] = None,
    repo: RepoOpt = None, password_file: PasswordFileOpt = None, key_file: KeyFileOpt = None,
    option: OptionOpt = None, json: JsonOpt = False,
) -> None:
    """Require a TOTP code for destructive operations; prints the enrolment secret ONCE."""
    r = _open(repo, password_file, key_file, option)
    secret, uri = mfa.enable(r, account)
    if json:
        emit_json({"secret": secret, "uri": uri})
        return
    qr = mfa.qr_text(uri) if console.is_terminal else None
    if qr:
        console.print(qr, markup=False, highlight=False)
    console.print(f"second factor enabled. Enrol this secret in an authenticator app now; it "
                  f"is shown only once:\n  secret: {secret}\n  uri:    {uri}", markup=False,
                  highlight=False)
    err_console.print("note: keep a copy of the secret offline; without it, destructive "
                      "operations need the escrow private key (see docs/AUDIT-MFA.md)",
                      markup=False)


@mfa_app.command("status")
def mfa_status(repo: RepoOpt = None, password_file: PasswordFileOpt = None,
               key_file: KeyFileOpt = None, option: OptionOpt = None,
               json: JsonOpt = False) -> None:
    """Say whether the repository requires the second factor."""
    r = _open(repo, password_file, key_file, option)
    on = mfa.enabled(r)
    if json:
        emit_json({"enabled": on})
    else:
        console.print("second factor: " + ("required for destructive operations" if on
                                           else "not enabled"), markup=False)


@mfa_app.command("check")
def mfa_check(otp: OtpOpt = None, repo: RepoOpt = None, password_file: PasswordFileOpt = None,
              key_file: KeyFileOpt = None, option: OptionOpt = None) -> None:
    """Check a code (it is then used up, like any accepted code)."""
    r = _open(repo, password_file, key_file, option)
    if not mfa.enabled(r):
        console.print("second factor: not enabled", markup=False)
        return
    mfa.require_second_factor(r, "mfa check", mfa.code_from(otp, "mfa check"))
    console.print("code accepted", markup=False)


@mfa_app.command("disable")
def mfa_disable(otp: OtpOpt = None, repo: RepoOpt = None, password_file: PasswordFileOpt = None,
                key_file: KeyFileOpt = None, option: OptionOpt = None) -> None:
    """Stop requiring the second factor (needs a code)."""
    r = _open(repo, password_file, key_file, option)
    if not mfa.enabled(r):
        console.print("second factor: not enabled", markup=False)
        return
    mfa.disable(r, mfa.code_from(otp, "mfa disable"))
    console.print("second factor disabled", markup=False)
