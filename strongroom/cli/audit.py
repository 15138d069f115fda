"""``strongroom audit``: list the audit log, or prove it intact with ``--verify``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from strongroom.audit import log as audit_log
from strongroom.audit.operation import audit_key, known_head, remember_head, write_record
from strongroom.cli.app import app
from strongroom.cli.common import (
    JsonOpt,
    KeyFileOpt,
    OptionOpt,
    PasswordFileOpt,
    RepoOpt,
    open_unrecorded,
)
from strongroom.cli.output import console, emit_json, fail, human_bytes, print_table
from strongroom.errors import ConfigError
from strongroom.repository import Repository


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """An ISO date or time (UTC unless it says), or an age such as 7d, 12h, 2w."""
    from strongroom.policy.retention import Duration

    now = now or datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        try:
            return Duration.parse(text).before(now)
        except ConfigError:
            raise ConfigError(f"--since {text!r} is neither a date (2026-01-31, "
                              "2026-01-31T08:00) nor an age (7d, 12h)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def record_row(rec: audit_log.Record) -> dict[str, Any]:
    doc = rec.doc
    return {"seq": rec.seq, "time": doc.get("time"), "op": doc.get("op"),
            "outcome": doc.get("outcome"), "error": doc.get("error"), "user": doc.get("user"),
            "host": doc.get("host"), "slot": doc.get("slot"), "args": doc.get("args", {}),
            "snapshots": doc.get("snapshots", []), "bytes": doc.get("bytes", 0),
            "result": doc.get("result", {}), "context": doc.get("context", {}),
            "hash": audit_log.record_hash(rec.raw)}


@app.command("audit")
def audit_cmd(
    since: Annotated[str | None, typer.Option(help="Only records from this date/time (ISO) or "
                                              "age (7d, 12h) on.")] = None,
    verify: Annotated[bool, typer.Option("--verify", help="Check every record's MAC and link; "
                                         "name any record removed, altered, reordered or "
                                         "forged (exit 13).")] = False,
    repo: RepoOpt = None, password_file: PasswordFileOpt = None, key_file: KeyFileOpt = None,
    option: OptionOpt = None, json: JsonOpt = False,
) -> None:
    """List the audit log of the repository (every operation: who, when, what, outcome)."""
    r = open_unrecorded(repo, password_file, key_file, option)
    if verify:
        _verify(r, json)
        return
    start = parse_since(since) if since else None
    rows = [record_row(rec) for rec in audit_log.read_records(r.backend)
            if start is None or (rec.time is not None and rec.time >= start)]
    if json:
        emit_json(rows)
        return
    print_table(["seq", "time (UTC)", "operation", "outcome", "user@host", "slot", "snapshots",
                 "bytes", "context"],
                [[str(row["seq"]), str(row["time"])[:19].replace("T", " "), str(row["op"]),
                  str(row["outcome"]) + (f": {row['error']}" if row["error"] else ""),
                  f"{row['user']}@{row['host']}", str(row["slot"] or "")[:8],
                  ",".join(s[:8] for s in row["snapshots"]),
                  human_bytes(row["bytes"]) if row["bytes"] else "",
                  ",".join(f"{k}={v}" for k, v in row["context"].items())] for row in rows])


def _verify(r: Repository, json: bool) -> None:
    key = audit_key(r)
    result = audit_log.verify(r.backend, key, known_head(r.id))
    write_record(r, "audit verify", {}, "ok" if result.ok else "damaged",
                 None if result.ok else result.problems[0],
                 result={"records": result.records, "problems": len(result.problems)})
    if result.ok:
        remember_head(r.id, result.head, result.head_hash)
    if json:
        emit_json(result.as_dict())
    else:
        for line in result.problems:
            console.print(f"tampered: {line}", markup=False)
    if not result.ok:
        more = f" (and {len(result.problems) - 1} more)" if len(result.problems) > 1 else ""
        raise fail(f"audit log of {r.url} is not intact: {result.problems[0]}{more}", code=13)
    if not json:
        note = (f" ({result.older_key} under an earlier master key, vouched for by the chain)"
                if result.older_key else "")
        console.print(f"audit log intact: {result.records} record(s), head {result.head}{note}",
                      markup=False)
