"""``strongroom key``: add, list, remove and change key slots without touching data; make an
escrow keypair and recover access with its private key."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from strongroom.cli._audit import command_opened
from strongroom.cli.app import key_app
from strongroom.cli.common import (
    JsonOpt,
    KeyFileOpt,
    OptionOpt,
    PasswordFileOpt,
    RepoOpt,
    open_repo,
    parse_options,
    repo_url,
)
from strongroom.cli.mfa import OtpOpt, use_code
from strongroom.cli.output import console, emit_json
from strongroom.crypto.escrow import (
    EscrowUnlocker,
    fingerprint,
    generate_keypair,
    load_public_key,
    make_escrow_slot,
    passphrase_from,
)
from strongroom.crypto.kms_slot import make_kms_slot
from strongroom.crypto.pkcs11_slot import Pkcs11Unlocker, TokenRef, make_pkcs11_slot, pin_from
from strongroom.crypto.slots import KeySlot, read_keyfile, read_secret_file, write_new_keyfile
from strongroom.crypto.unlock import Unlocker
from strongroom.errors import ConfigError
from strongroom.mfa import ask_if_needed
from strongroom.repository import Repository
from strongroom.repository.locks import RepositoryLock
from strongroom.repository.repo import read_password_file

NewPwOpt = Annotated[Path | None, typer.Option(
    "--new-password-file", help="File holding the new password.")]
NewKeyOpt = Annotated[Path | None, typer.Option(
    "--new-key-file", help="Key file for the new slot (created if it does not exist).")]
Pkcs11ModuleOpt = Annotated[str | None, typer.Option(
    "--pkcs11-module", help="Open with this PKCS#11 module (or STRONGROOM_PKCS11_MODULE).")]
Pkcs11TokenOpt = Annotated[str | None, typer.Option(
    "--pkcs11-token", help="Label of the PKCS#11 token.")]
Pkcs11KeyOpt = Annotated[str | None, typer.Option(
    "--pkcs11-key", help="Label of the AES-256 key on the token.")]
Pkcs11PinFileOpt = Annotated[Path | None, typer.Option(
    "--pkcs11-pin-file", help="File holding the token PIN (or set STRONGROOM_PKCS11_PIN).")]
EscrowPassOpt = Annotated[Path | None, typer.Option(
    "--escrow-passphrase-file",
    help="File holding the escrow private key's passphrase (or STRONGROOM_ESCROW_PASSPHRASE).")]


def _open_pkcs11(module: str | None, token: str | None, key: str | None,
                 pin_file: Path | None) -> list[Unlocker]:
    """An unlocker for the ``--pkcs11-*`` options, if any is given."""
    if not (module or token or key or pin_file):
        return []
    return [Pkcs11Unlocker(TokenRef(module, token, key), lambda: pin_from(pin_file))]


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
            raise ConfigError("give --new-password-file or --new-key-file (or a --pkcs11-, "
                              "--kms- or --escrow- option for those kinds)")
        pw = getpass.getpass("new password: ")
        if getpass.getpass("repeat new password: ") != pw:
            raise ConfigError("passwords do not match")
    if not pw:
        raise ConfigError("the new password is empty")
    return "password", pw.encode()


@key_app.command("add")
def key_add(new_password_file: NewPwOpt = None, new_key_file: NewKeyOpt = None,
            pkcs11_module: Annotated[str | None, typer.Option(
                "--pkcs11-module", help="New pkcs11 slot: module of the token.")] = None,
            pkcs11_token: Annotated[str | None, typer.Option(
                "--pkcs11-token", help="New pkcs11 slot: token label.")] = None,
            pkcs11_key: Annotated[str | None, typer.Option(
                "--pkcs11-key", help="New pkcs11 slot: label of the AES-256 key.")] = None,
            pkcs11_create_key: Annotated[bool, typer.Option(
                "--pkcs11-create-key", help="Generate the key on the token (non-extractable)."
            )] = False,
            pkcs11_pin_file: Pkcs11PinFileOpt = None,
            kms_key_id: Annotated[str | None, typer.Option(
                "--kms-key-id", help="New kms slot: key ARN, id or alias/NAME.")] = None,
            kms_endpoint: Annotated[str | None, typer.Option(
                "--kms-endpoint", help="KMS endpoint URL (default: AWS).")] = None,
            kms_region: Annotated[str | None, typer.Option(
                "--kms-region", help="KMS region (default: the AWS configuration's).")] = None,
            escrow_public_key: Annotated[Path | None, typer.Option(
                "--escrow-public-key", help="New escrow slot: the holder's PUBLIC key file.")
            ] = None,
            label: Annotated[str, typer.Option(help="A note for this slot.")] = "",
            repo: RepoOpt = None, password_file: PasswordFileOpt = None,
            key_file: KeyFileOpt = None, option: OptionOpt = None,
            json: JsonOpt = False) -> None:
    """Add a key slot (password, key file, PKCS#11 token, KMS key or escrow public key) for the
    same master key; no data is rewritten."""
    kinds = [k for k, given in (("pkcs11", pkcs11_token or pkcs11_key or pkcs11_module),
                                ("kms", kms_key_id), ("escrow", escrow_public_key),
                                ("password", new_password_file), ("keyfile", new_key_file))
             if given]
    if len(kinds) > 1:
        raise ConfigError(f"give options of one slot kind only (got {', '.join(kinds)})")
    if escrow_public_key:  # read before opening: a wrong file fails fast
        recipient = load_public_key(escrow_public_key)
    r = open_repo(repo, password_file, key_file, option)
    slot: KeySlot
    if kinds == ["pkcs11"]:
        slot = make_pkcs11_slot(r.master, r.id, TokenRef(pkcs11_module, pkcs11_token,
                                                         pkcs11_key),
                                pin_from(pkcs11_pin_file), pkcs11_create_key, label)
        r.put_slot(slot)
    elif kinds == ["kms"]:
        assert kms_key_id is not None
        slot = r.put_slot(make_kms_slot(r.master, r.id, kms_key_id, kms_region, kms_endpoint,
                                        label))
    elif kinds == ["escrow"]:
        slot = r.put_slot(make_escrow_slot(r.master, r.id, recipient, label))
    else:
        slot_type, secret = _new_secret(new_password_file, new_key_file)
        slot = r.add_slot(slot_type, secret, label)  # type: ignore[arg-type]
    if json:
        emit_json({"id": slot.id, "type": slot.type, "detail": slot.detail()})
    else:
        detail = f" ({slot.detail()})" if slot.detail() else ""
        console.print(f"added {slot.type} key slot {slot.id}{detail}", markup=False)


@key_app.command("list")
def key_list(repo: RepoOpt = None, password_file: PasswordFileOpt = None,
             key_file: KeyFileOpt = None, option: OptionOpt = None,
             pkcs11_module: Pkcs11ModuleOpt = None, pkcs11_token: Pkcs11TokenOpt = None,
             pkcs11_key: Pkcs11KeyOpt = None, pkcs11_pin_file: Pkcs11PinFileOpt = None,
             json: JsonOpt = False) -> None:
    """List key slots: kind, where the key lives, creation; the one in use is marked."""
    r = open_repo(repo, password_file, key_file, option,
                  _open_pkcs11(pkcs11_module, pkcs11_token, pkcs11_key, pkcs11_pin_file))
    rows = [{"id": s.id, "type": s.type, "label": s.label, "created": s.created.isoformat(),
             "host": s.host, "user": s.user, "detail": s.detail(),
             "current": s.id == r.slot_id} for s in r.slots()]
    epochs = epoch_rows(r)
    current = next((e for e in epochs if e["current"]), None)
    if json:
        for row in rows:
            row["epoch"] = current["epoch"] if current else 0
        emit_json(rows)
        return
    table = Table("", "id", "type", "label", "created", "host", "user", "key")
    for row in rows:
        table.add_row("*" if row["current"] else "", str(row["id"]), str(row["type"]),
                      str(row["label"]), str(row["created"])[:19], str(row["host"]),
                      str(row["user"]), str(row["detail"]))
    console.print(table)
    if current is not None:
        live = [e for e in epochs if not e["retired"]]
        console.print(f"data key: epoch {current['epoch']} (created {current['created'][:10]}); "
                      f"{len(live)} epoch key(s) held, {len(epochs) - len(live)} retired "
                      "(strongroom key epochs)", markup=False)
    from strongroom.repository.reencrypt import describe_state

    note = describe_state(r)
    if note:
        console.print(f"note: {note}", markup=False)


@key_app.command("remove")
def key_remove(slot_id: Annotated[str, typer.Argument(help="Slot id or unique prefix.")],
               otp: OtpOpt = None,
               repo: RepoOpt = None, password_file: PasswordFileOpt = None,
               key_file: KeyFileOpt = None, option: OptionOpt = None) -> None:
    """Remove a key slot (never the last one, never the one in use)."""
    r = open_repo(repo, password_file, key_file, option)
    ask_if_needed(r, "key remove", otp)
    r.remove_slot(slot_id)
    console.print(f"removed key slot {slot_id}")


@key_app.command("passwd")
def key_passwd(new_password_file: NewPwOpt = None, repo: RepoOpt = None,
               password_file: PasswordFileOpt = None, key_file: KeyFileOpt = None,
               option: OptionOpt = None) -> None:
    """Change the password of the slot in use (a new slot replaces it)."""
    r = open_repo(repo, password_file, key_file, option)
    in_use = next((s.type for s in r.slots() if s.id == r.slot_id), None)
    if in_use != "password":
        kind = "a key file" if in_use == "keyfile" else f"a {in_use} slot"
        raise ConfigError(f"the repository was opened with {kind}, not a password: open it "
                          "with the password to change (key add/remove manage other slots)")
    slot_type, secret = _new_secret(new_password_file, None)
    old = r.slot_id
    slot = r.add_slot(slot_type, secret, "passwd")  # type: ignore[arg-type]
    r.backend.delete(f"keys/{old}")
    console.print(f"password changed: slot {old} replaced by {slot.id}")


@key_app.command("escrow-keygen")
def key_escrow_keygen(
        out: Annotated[Path, typer.Option("--out", help="Directory for the two key files.")],
        passphrase_file: Annotated[Path | None, typer.Option(
            "--passphrase-file", help="Encrypt the private key with the passphrase in FILE.")
        ] = None,
        json: JsonOpt = False) -> None:
    """Make an escrow keypair: give the public key to whoever adds slots, keep the private key
    offline (it opens every repository with an escrow slot for it)."""
    passphrase = read_secret_file(passphrase_file, "passphrase") if passphrase_file else None
    if passphrase_file and not passphrase:
        raise ConfigError(f"passphrase file {passphrase_file} is empty")
    private, public = generate_keypair(out, passphrase)
    fp = fingerprint(load_public_key(public))
    if json:
        emit_json({"private": str(private), "public": str(public), "fingerprint": fp})
    else:
        console.print(f"escrow private key: {private} (keep offline)\n"
                      f"escrow public key:  {public}\nfingerprint: {fp}", markup=False)


@key_app.command("recover")
def key_recover(
        escrow_key: Annotated[Path, typer.Option(
            "--escrow-key", help="The escrow holder's private key file.")],
        escrow_passphrase_file: EscrowPassOpt = None,
        new_password_file: NewPwOpt = None, new_key_file: NewKeyOpt = None,
        pkcs11_module: Annotated[str | None, typer.Option(
            "--pkcs11-module", help="New pkcs11 slot: module of the token.")] = None,
        pkcs11_token: Annotated[str | None, typer.Option(
            "--pkcs11-token", help="New pkcs11 slot: token label (e.g. a replacement token)."
        )] = None,
        pkcs11_key: Annotated[str | None, typer.Option(
            "--pkcs11-key", help="New pkcs11 slot: label of the AES-256 key.")] = None,
        pkcs11_create_key: Annotated[bool, typer.Option(
            "--pkcs11-create-key", help="Generate the key on the token (non-extractable).")
        ] = False,
        pkcs11_pin_file: Pkcs11PinFileOpt = None,
        label: Annotated[str, typer.Option(help="A note for the new slot.")] = "recovered",
        repo: RepoOpt = None, option: OptionOpt = None, json: JsonOpt = False) -> None:
    """Open the repository with the escrow private key and add a new password, key-file or
    PKCS#11 token slot: a lost password or a lost token is recoverable."""
    hsm = bool(pkcs11_module or pkcs11_token or pkcs11_key)
    if hsm and (new_password_file or new_key_file):
        raise ConfigError("give options of one slot kind only (--pkcs11-* or "
                          "--new-password-file or --new-key-file)")
    pin = pin_from(pkcs11_pin_file) if hsm else None  # before opening: a missing PIN fails fast
    unlocker = EscrowUnlocker(escrow_key, lambda: passphrase_from(escrow_passphrase_file))
    r = Repository.open(repo_url(repo), None, None, parse_options(option), [unlocker])
    command_opened(r)
    slot: KeySlot
    if pin is not None:
        slot = r.put_slot(make_pkcs11_slot(r.master, r.id, TokenRef(
            pkcs11_module, pkcs11_token, pkcs11_key), pin, pkcs11_create_key, label))
    else:
        slot_type, secret = _new_secret(new_password_file, new_key_file)
        slot = r.add_slot(slot_type, secret, label)  # type: ignore[arg-type]
    if json:
        emit_json({"id": slot.id, "type": slot.type, "detail": slot.detail(),
                   "opened_with": r.slot_id})
    else:
        detail = f" ({slot.detail()})" if slot.detail() else ""
        console.print(f"recovered: added {slot.type} key slot {slot.id}{detail} (opened with "
                      f"escrow slot {r.slot_id})", markup=False)


# ---- epochs: rotate, retire ---------------------------------------------------------------

EpochOpt = Annotated[list[int] | None, typer.Option(
    "--epoch", help="With --reencrypt: only this epoch (repeatable; default every old one).")]


def _opening_secrets(password_file: Path | None, key_file: Path | None
                     ) -> tuple[list[bytes], list[bytes]]:
    """The password and key file the repository is opened with (they re-wrap their slot)."""
    password = read_password_file(password_file) if password_file else \
        os.environ.get("STRONGROOM_PASSWORD")
    return ([password.encode()] if password else [],
            [read_keyfile(key_file)] if key_file else [])


@key_app.command("rotate")
def key_rotate(
        reencrypt: Annotated[bool, typer.Option(
            "--reencrypt", help="Rewrite every object of the old epochs under the current one "
            "(resumable; safe next to backups; old packs deleted once the new are verified).")
        ] = False,
        epoch: EpochOpt = None,
        master: Annotated[bool, typer.Option(
            "--master", help="Replace the master key: re-wrap the keyring and every slot.")
        ] = False,
        slot_password_file: Annotated[list[Path] | None, typer.Option(
            "--slot-password-file", help="--master: password of another password slot "
            "(repeatable).")] = None,
        slot_key_file: Annotated[list[Path] | None, typer.Option(
            "--slot-key-file", help="--master: key file of another key-file slot (repeatable).")
        ] = None,
        escrow_public_key: Annotated[list[Path] | None, typer.Option(
            "--escrow-public-key", help="--master: public key of an escrow slot's holder "
            "(repeatable).")] = None,
        drop_slot: Annotated[list[str] | None, typer.Option(
            "--drop-slot", help="--master: remove this slot instead of re-wrapping it.")] = None,
        pkcs11_module: Pkcs11ModuleOpt = None, pkcs11_token: Pkcs11TokenOpt = None,
        pkcs11_key: Pkcs11KeyOpt = None, pkcs11_pin_file: Pkcs11PinFileOpt = None,
        lock_wait: Annotated[float, typer.Option(
            "--lock-wait", help="Seconds to wait for other jobs' locks.")] = 120.0,
        otp: OtpOpt = None,
        repo: RepoOpt = None, password_file: PasswordFileOpt = None,
        key_file: KeyFileOpt = None, option: OptionOpt = None, json: JsonOpt = False) -> None:
    """Start a new data-key epoch (new data is sealed under it; old data stays readable, nothing
    is re-uploaded); --reencrypt rewrites old epochs' objects; --master replaces the master."""
    from strongroom.repository import reencrypt as rr

    use_code(otp)
    if epoch and not reencrypt:
        raise ConfigError("--epoch goes with --reencrypt")
    if master and reencrypt:
        raise ConfigError("give --master or --reencrypt, not both (run them one after the other)")
    r = open_repo(repo, password_file, key_file, option,
                  _open_pkcs11(pkcs11_module, pkcs11_token, pkcs11_key, pkcs11_pin_file))
    if master:
        from strongroom.crypto.escrow import load_public_key
        from strongroom.repository.rekey import SlotCredentials, report_dict, rotate_master

        passwords, keyfiles = _opening_secrets(password_file, key_file)
        creds = SlotCredentials(
            passwords=passwords + [read_password_file(p).encode()
                                   for p in slot_password_file or []],
            keyfiles=keyfiles + [read_keyfile(p) for p in slot_key_file or []],
            escrow_public=[load_public_key(p) for p in escrow_public_key or []],
            pkcs11_pin=lambda: pin_from(pkcs11_pin_file),
            pkcs11_module=pkcs11_module or os.environ.get("STRONGROOM_PKCS11_MODULE"),
            kms_endpoint=os.environ.get("STRONGROOM_KMS_ENDPOINT"), drop=set(drop_slot or []))
        report = rotate_master(r, creds, lock_wait)
        if json:
            emit_json(report_dict(report))
        else:
            dropped = f"; dropped {', '.join(report.dropped)}" if report.dropped else ""
            console.print(f"master key replaced: {len(report.rewrapped)} key slot(s) and "
                          f"{report.keyring_objects} keyring object(s) re-wrapped{dropped}",
                          markup=False)
        return
    if reencrypt:
        rr.require_second_factor(r, "key rotate --reencrypt")
        result = rr.reencrypt(r, set(epoch) if epoch else None, lock_wait)
        if json:
            emit_json(result.as_dict())
            return
        if not result.targets:
            console.print(f"nothing to re-encrypt: every object is sealed under epoch "
                          f"{result.current}", markup=False)
            return
        console.print(
            f"re-encrypted epoch(s) {', '.join(map(str, result.targets))} under epoch "
            f"{result.current}: {result.packs_rewritten} pack(s) "
            f"({result.bytes_written / 2**20:.1f} MiB), {len(result.snapshots_resealed)} "
            f"snapshot(s) (new ids), {result.index_files_rewritten} index file(s), "
            f"{result.packs_deleted} old pack(s) deleted in {result.duration_s:.1f} s",
            markup=False)
        for note in result.skipped:
            console.print(f"skipped: {note}", markup=False)
        return
    import time

    started = time.perf_counter()
    lock = _shared_lock(r, lock_wait)
    try:
        new = r.rotate_epoch()
    finally:
        lock.release()
    took = time.perf_counter() - started
    if json:
        emit_json({"epoch": new, "seconds": round(took, 4)})
    else:
        console.print(f"rotated: new data is sealed under epoch {new} ({took * 1000:.0f} ms); "
                      "older epochs stay readable", markup=False)


def _shared_lock(r: Repository, wait_s: float) -> RepositoryLock:
    """A plain rotation runs beside backups but never beside a master rotation (exclusive)."""
    return RepositoryLock.acquire(r.backend, exclusive=False, purpose="key rotate",
                                  wait_s=wait_s)


@key_app.command("retire")
def key_retire(epoch: Annotated[int, typer.Argument(help="The epoch whose key is destroyed.")],
               lock_wait: Annotated[float, typer.Option(
                   "--lock-wait", help="Seconds to wait for other jobs' locks.")] = 120.0,
               otp: OtpOpt = None,
               repo: RepoOpt = None, password_file: PasswordFileOpt = None,
               key_file: KeyFileOpt = None, option: OptionOpt = None) -> None:
    """Destroy an old epoch's key; refused while any stored object still needs it."""
    from strongroom.repository import reencrypt as rr

    use_code(otp)
    r = open_repo(repo, password_file, key_file, option)
    rr.require_second_factor(r, "key retire")
    rr.retire_epoch(r, epoch, lock_wait)
    console.print(f"retired epoch {epoch}: its key is destroyed", markup=False)


@key_app.command("epochs")
def key_epochs(repo: RepoOpt = None, password_file: PasswordFileOpt = None,
               key_file: KeyFileOpt = None, option: OptionOpt = None,
               usage: Annotated[bool, typer.Option(
                   "--usage", help="Count the stored objects each epoch seals (reads every "
                   "pack's header).")] = False,
               json: JsonOpt = False) -> None:
    """List the data-key epochs: creation, current, retired (and what each still seals)."""
    r = open_repo(repo, password_file, key_file, option)
    rows = epoch_rows(r, usage)
    if json:
        emit_json(rows)
        return
    table = Table("", "epoch", "created", "state", *(("objects",) if usage else ()))
    for row in rows:
        state = f"retired {row['retired'][:10]}" if row["retired"] else \
            ("format 1" if row["legacy"] else "")
        table.add_row("*" if row["current"] else "", str(row["epoch"]), row["created"][:19],
                      state, *((str(row.get("objects", 0)),) if usage else ()))
    console.print(table)


def epoch_rows(r: Repository, usage: bool = False) -> list[dict[str, object]]:
    """One row per epoch (``key epochs``, ``key list --json``)."""
    from strongroom.repository import reencrypt as rr

    counts = rr.epoch_usage(r) if usage else {}
    keyring = r.refresh_keyring()
    rows: list[dict[str, object]] = []
    for info in keyring.infos:
        row: dict[str, object] = {"epoch": info.epoch, "created": info.created,
                                  "current": info.epoch == keyring.current,
                                  "retired": info.retired or "", "legacy": info.legacy,
                                  "other_masters": info.other_masters}
        if usage:
            row["objects"] = sum(counts.get(info.epoch, {}).values())
        rows.append(row)
    return rows
