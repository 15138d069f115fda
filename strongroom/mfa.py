"""A second factor (TOTP, RFC 6238) for operations that destroy data or go beyond the stored
policy: changing the policy, a forget the policy would not do, a prune with a shorter grace
than the policy's minimum, removing a key slot or retiring an epoch, re-encrypting, and
disabling the factor itself. Backups, restores and the scheduled retention (which applies the
stored policy) never need it.

The TOTP secret is a sealed setting (:mod:`strongroom.settings`). Each accepted code claims its
time step with ``put_if_absent`` on ``mfa/used/<step>``: the same code (or any code of that
step) is refused a second time, also by another host at the same moment. Refusals are audited.
A repository opened with the escrow private key (the break-glass holder's offline key, itself a
second factor) passes without a code, so a lost authenticator is recoverable.

What this protects against: a stolen password (or key file) used by hand through Strongroom.
What it cannot: anyone holding the master key can write the storage directly (delete
snapshots, the setting itself); immutability against that comes from Object Lock.
"""

from __future__ import annotations

import getpass
import hmac
import re
import sys
import time
import weakref
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pyotp

from strongroom import settings
from strongroom.audit.operation import current, write_record
from strongroom.errors import ConfigError, StrongroomError

if TYPE_CHECKING:
    from strongroom.repository import Repository

SETTING = "mfa"
USED_PREFIX = "mfa/used/"
INTERVAL = 30
DIGITS = 6
WINDOW = 1  # steps either side of now accepted (clock drift)
ISSUER = "Strongroom"
_PASSED: weakref.WeakSet[Any] = weakref.WeakSet()  # opened repositories whose code was accepted


class SecondFactorError(StrongroomError):
    """The second factor was needed and missing, wrong or replayed."""

    exit_code = 20


class SecondFactorRequired(SecondFactorError):
    """No code was given for an operation that needs one."""


class WrongCode(SecondFactorError):
    """The code does not match the enrolled secret at this time."""


class ReplayedCode(SecondFactorError):
    """The code's time step was already used."""


def enabled(repo: Repository) -> bool:
    return settings.load(repo, SETTING) is not None


def _opened_with_escrow(repo: Repository) -> bool:
    return any(s.id == repo.slot_id and s.type == "escrow" for s in repo.slots())


def enable(repo: Repository, account: str | None = None) -> tuple[str, str]:
    """Enrol: a new secret, stored sealed; returns ``(secret, otpauth URI)`` to show once."""
    if enabled(repo):
        raise ConfigError("the second factor is already enabled (disable it first, with a "
                          "code, to enrol a new authenticator)")
    secret = pyotp.random_base32()
    settings.save(repo, SETTING, {"secret": secret, "digits": DIGITS, "interval": INTERVAL,
                                  "enabled": datetime.now(UTC).isoformat()})
    name = account or f"repository {repo.id[:8]}"
    return secret, pyotp.TOTP(secret).provisioning_uri(name=name, issuer_name=ISSUER)


def disable(repo: Repository, code: str | None) -> None:
    """Turn the second factor off (needs a valid code)."""
    require_second_factor(repo, "mfa disable", code)
    settings.remove(repo, SETTING)


def _matching_step(cfg: dict[str, Any], code: str, now: float) -> int | None:
    totp = pyotp.TOTP(cfg["secret"], digits=int(cfg.get("digits", DIGITS)),
                      interval=int(cfg.get("interval", INTERVAL)))
    step_now = int(now // totp.interval)
    for step in (step_now, step_now - WINDOW, step_now + WINDOW):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def _refuse(repo: Repository, action: str, error: SecondFactorError) -> SecondFactorError:
    write_record(repo, "mfa refused", {"action": action}, "refused", str(error))
    return error


def require_second_factor(repo: Repository, action: str, code: str | None,
                          now: float | None = None) -> None:
    """Pass when the repository needs no second factor, or ``code`` is valid and unused;
    else raise (one line, exit 20) after auditing the refusal. ``action`` names the operation
    in messages and records."""
    if repo in _PASSED:  # one command, one code (forget --prune checks twice)
        return
    cfg = settings.load(repo, SETTING)
    if cfg is None:
        return
    operation = current(repo)
    if _opened_with_escrow(repo):
        if operation is not None:
            operation.args["second_factor"] = "escrow key"
        _PASSED.add(repo)
        return
    if not code:
        raise _refuse(repo, action, SecondFactorRequired(
            f"{action} needs the second factor: give --otp CODE from the enrolled "
            "authenticator (or run it on a terminal to be asked)"))
    code = re.sub(r"\s", "", code)
    step = _matching_step(cfg, code, time.time() if now is None else now) \
        if code.isdigit() and len(code) == int(cfg.get("digits", DIGITS)) else None
    if step is None:
        raise _refuse(repo, action, WrongCode(f"wrong second-factor code for {action}"))
    if not repo.backend.put_if_absent(f"{USED_PREFIX}{step:012d}", action.encode()):
        raise _refuse(repo, action, ReplayedCode(
            f"this second-factor code was already used; wait for the next one ({action})"))
    if operation is not None:
        operation.args["second_factor"] = "totp"
    _PASSED.add(repo)
    _forget_old_steps(repo, step)


def _forget_old_steps(repo: Repository, step: int) -> None:
    """Markers of steps no code can match any more are not needed (best effort)."""
    for key, _size in list(repo.backend.list(USED_PREFIX)):
        try:
            if int(key.rsplit("/", 1)[-1]) < step - 4 * WINDOW - 2:
                repo.backend.delete(key)
        except (ValueError, StrongroomError):
            continue


def code_from(option: str | None, action: str) -> str | None:
    """The code from ``--otp``, else asked on a terminal, else None."""
    if option:
        return option
    if sys.stdin.isatty():
        return getpass.getpass(f"second-factor code for {action}: ")
    return None


def ask_if_needed(repo: Repository, action: str, option: str | None) -> None:
    """CLI helper: check the second factor for ``action``, asking on a terminal if needed."""
    if not enabled(repo):
        return
    require_second_factor(repo, action, code_from(option, action))


def qr_text(uri: str) -> str | None:
    """The otpauth URI as a QR code in text (for a terminal), or None without ``qrcode``."""
    try:
        import io

        import qrcode
    except ImportError:
        return None
    qr = qrcode.QRCode(border=1)
    qr.add_data(uri)
    qr.make(fit=True)
    out = io.StringIO()
    qr.print_ascii(out=out, invert=True)
    return out.getvalue()
