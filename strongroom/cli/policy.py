"""``strongroom policy``: the retention policy stored sealed in the repository, which the
scheduled retention applies (changing it needs the second factor when one is enabled)."""

from __future__ import annotations

from typing import Annotated

import typer

from strongroom import mfa
from strongroom.cli.app import app
from strongroom.cli.common import JsonOpt, KeyFileOpt, OptionOpt, PasswordFileOpt, RepoOpt
from strongroom.cli.common import open_repo as _open
from strongroom.cli.mfa import OtpOpt
from strongroom.cli.output import console, emit_json
from strongroom.policy.retention import RetentionPolicy
from strongroom.policy.stored import load_policy, save_policy, updated_policy

policy_app = typer.Typer(help="The retention policy stored in the repository.",
                         no_args_is_help=True)
app.add_typer(policy_app, name="policy")
Count = Annotated[int | None, typer.Option(min=-1, help="-1 = unlimited.")]


@policy_app.command("set")
def policy_set(
    keep_last: Count = None, keep_hourly: Count = None, keep_daily: Count = None,
    keep_weekly: Count = None, keep_monthly: Count = None, keep_yearly: Count = None,
    keep_within: Annotated[str | None, typer.Option(help="e.g. 14d, 4w, 24h, 12m.")] = None,
    keep_tag: Annotated[list[str] | None, typer.Option(help="Keep snapshots with these tags "
                                                       "(repeatable).")] = None,
    schedule: Annotated[str | None, typer.Option(help="Set the rule of this schedule tag "
                                                 "(incremental, full, monthly-archive, ...) "
                                                 "instead of the default rule.")] = None,
    min_grace: Annotated[str | None, typer.Option(help="Shortest prune grace allowed without "
                                                  "the second factor (e.g. 1h, 2d).")] = None,
    otp: OtpOpt = None,
    repo: RepoOpt = None, password_file: PasswordFileOpt = None, key_file: KeyFileOpt = None,
    option: OptionOpt = None, json: JsonOpt = False,
) -> None:
    """Store (or change one rule of) the retention policy; needs the second factor if enabled."""
    rules = {"keep_last": keep_last, "keep_hourly": keep_hourly, "keep_daily": keep_daily,
             "keep_weekly": keep_weekly, "keep_monthly": keep_monthly,
             "keep_yearly": keep_yearly, "keep_within": keep_within,
             "keep_tag": tuple(keep_tag or ())}
    rule = RetentionPolicy.build(**rules)
    r = _open(repo, password_file, key_file, option)
    policy = updated_policy(load_policy(r), None if rule.is_empty() else rule, schedule,
                            min_grace)
    mfa.ask_if_needed(r, "policy set", otp)
    stored = save_policy(r, policy)
    if json:
        emit_json(stored.model_dump(mode="json"))
        return
    console.print("stored retention policy:\n  " + "\n  ".join(stored.describe()), markup=False)


@policy_app.command("show")
def policy_show(repo: RepoOpt = None, password_file: PasswordFileOpt = None,
                key_file: KeyFileOpt = None, option: OptionOpt = None,
                json: JsonOpt = False) -> None:
    """Show the stored retention policy."""
    r = _open(repo, password_file, key_file, option)
    stored = load_policy(r)
    if json:
        emit_json(stored.model_dump(mode="json") if stored else None)
    elif stored is None:
        console.print("no retention policy stored (the scheduled retention uses the platform's "
                      "policies or the tier defaults)", markup=False)
    else:
        console.print("stored retention policy:\n  " + "\n  ".join(stored.describe()),
                      markup=False)


@policy_app.command("clear")
def policy_clear(otp: OtpOpt = None, repo: RepoOpt = None,
                 password_file: PasswordFileOpt = None, key_file: KeyFileOpt = None,
                 option: OptionOpt = None) -> None:
    """Remove the stored policy; needs the second factor if enabled."""
    from strongroom import settings
    from strongroom.policy.stored import SETTING

    r = _open(repo, password_file, key_file, option)
    mfa.ask_if_needed(r, "policy clear", otp)
    settings.remove(r, SETTING)
    console.print("stored retention policy removed", markup=False)
