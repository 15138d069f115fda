"""Recording operations: :func:`audited` wraps one operation on a repository and appends its
record (outcome, snapshot ids, bytes) when it ends, also when it fails.

Operations nest: an operation started inside another on the same repository (a key slot added
by ``key recover``, the snapshot written by a backup command) adds its snapshots and bytes to
the outer record instead of writing its own. Callers outside the engine (Prefect tasks) add
fields such as the flow-run id with :func:`context` or the ``STRONGROOM_AUDIT_CONTEXT``
environment variable (JSON object, or ``key=value,key=value``).
"""

from __future__ import annotations

import contextvars
import functools
import getpass
import inspect
import json
import logging
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from strongroom.audit.log import append, summary
from strongroom.errors import StrongroomError

if TYPE_CHECKING:
    from strongroom.repository import Repository

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("strongroom.audit")
CONTEXT_ENV = "STRONGROOM_AUDIT_CONTEXT"
SECRET_WORDS = ("password", "secret", "token", "pin", "passphrase", "otp", "credential")

_CONTEXT: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "strongroom_audit_context", default=None)
_ACTIVE: contextvars.ContextVar[tuple[Operation, ...]] = contextvars.ContextVar(
    "strongroom_audit_active", default=())


@contextmanager
def context(**fields: Any) -> Iterator[None]:
    """Add ``fields`` (e.g. ``flow_run=<id>``) to every record written inside the block."""
    token = _CONTEXT.set({**(_CONTEXT.get() or {}), **{k: str(v) for k, v in fields.items()
                                               if v is not None}})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def _env_context() -> dict[str, str]:
    text = os.environ.get(CONTEXT_ENV, "").strip()
    if not text:
        return {}
    try:
        doc = json.loads(text)
        if isinstance(doc, dict):
            return {str(k): str(v) for k, v in doc.items()}
    except ValueError:
        pass
    out = {}
    for item in text.split(","):
        k, sep, v = item.partition("=")
        if sep and k.strip():
            out[k.strip()] = v.strip()
    return out


def clean_args(args: dict[str, Any]) -> dict[str, Any]:
    """Arguments fit for the log: secret-looking names dropped, values made JSON-safe."""
    out: dict[str, Any] = {}
    for k, v in args.items():
        if v is None or any(w in k.lower() for w in SECRET_WORDS):
            continue
        if isinstance(v, (str, int, float, bool)):
            out[k] = v
        elif isinstance(v, (list, tuple, set)):
            out[k] = [x if isinstance(x, (str, int, float, bool)) else str(x) for x in v]
        elif isinstance(v, dict):
            out[k] = clean_args(v)
        else:
            out[k] = str(v)
    return out


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


@dataclass
class Operation:
    """One operation being recorded; callers add what it produced."""

    repo: Repository
    op: str
    args: dict[str, Any]
    snapshots: list[str] = field(default_factory=list)
    bytes: int = 0
    result: dict[str, Any] = field(default_factory=dict)
    outcome: str | None = None  # set to override "ok"/"failed" (e.g. "refused")

    def add_snapshot(self, snap_id: str, nbytes: int = 0) -> None:
        if snap_id and snap_id not in self.snapshots:
            self.snapshots.append(snap_id)
        self.bytes += int(nbytes or 0)


def audit_key(repo: Repository) -> bytes:
    """The MAC key of the audit log: a stable subkey no key rotation or migration changes."""
    return repo.stable_key("audit-mac")


def report_summary(repo: Repository, since: datetime | None = None) -> dict[str, Any]:
    """Audit activity of ``repo`` for a report: counts since ``since`` by operation and
    outcome, failed operations, refused second-factor codes, records from flow runs, and
    whether the whole chain verifies (one pass; reading it is not itself recorded)."""
    return summary(repo.backend, since, audit_key(repo), known_head(repo.id))


def write_record(repo: Repository, op: str, args: dict[str, Any], outcome: str,
                 error: str | None = None, snapshots: list[str] | None = None,
                 nbytes: int = 0, result: dict[str, Any] | None = None) -> int | None:
    """Append one record now; returns its number (None if it could not be written: that is
    logged as a warning and never hides the operation's own outcome). There is no switch to
    turn recording off: a stolen password must not be able to silence the log."""
    body = {
        "time": datetime.now(UTC).isoformat(), "op": op, "args": clean_args(args),
        "user": _user(), "host": socket.gethostname(), "slot": repo.slot_id,
        "outcome": outcome, "error": error, "snapshots": list(snapshots or []),
        "bytes": nbytes, "result": clean_args(result or {}),
        "context": {**_env_context(), **(_CONTEXT.get() or {})},
    }
    try:
        seq, digest = append(repo.backend, audit_key(repo), body)
    except StrongroomError as exc:
        log.warning("audit record of %s not written: %s", op, exc)
        return None
    remember_head(repo.id, seq, digest)
    return seq


@contextmanager
def audited(repo: Repository, op: str, **args: Any) -> Iterator[Operation]:
    """Record ``op`` on ``repo`` when the block ends: ``ok``, or ``failed`` with the error's
    one-line message (the exception still propagates). Inside another operation on the same
    repository, fold into that one."""
    active = _ACTIVE.get()
    outer = next((o for o in reversed(active) if o.repo is repo), None)
    if outer is not None:
        yield outer
        return
    operation = Operation(repo, op, dict(args))
    token = _ACTIVE.set((*active, operation))
    error: BaseException | None = None
    try:
        yield operation
    except BaseException as exc:
        error = exc
        raise
    finally:
        _ACTIVE.reset(token)
        if error is None:
            outcome, message = operation.outcome or "ok", None
        elif isinstance(error, KeyboardInterrupt):
            outcome, message = "interrupted", "interrupted"
        else:
            outcome = operation.outcome or "failed"
            message = (str(error).splitlines() or [type(error).__name__])[0] \
                if isinstance(error, StrongroomError) else type(error).__name__
        write_record(repo, operation.op, operation.args, outcome, message,
                     operation.snapshots, operation.bytes, operation.result)


def current(repo: Repository) -> Operation | None:
    """The operation being recorded on ``repo`` in this context, if any."""
    return next((o for o in reversed(_ACTIVE.get()) if o.repo is repo), None)


# ---- what this client saw last (catches a log cut short at its end) -------------------------

def state_dir() -> Path:
    base = os.environ.get("STRONGROOM_STATE_DIR") or os.environ.get("XDG_STATE_HOME") or \
        str(Path.home() / ".local" / "state")
    return Path(base) / "strongroom" / "audit"


def remember_head(repo_id: str, seq: int, digest: str) -> None:
    """Keep the highest record number (and its hash) this client wrote or verified."""
    path = state_dir() / repo_id
    try:
        known = known_head(repo_id)
        if known and known[0] >= seq:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"seq": seq, "hash": digest}))
        tmp.replace(path)
    except OSError:  # a read-only home: the log itself is still complete
        pass


def known_head(repo_id: str) -> tuple[int, str] | None:
    try:
        doc = json.loads((state_dir() / repo_id).read_text())
        return int(doc["seq"]), str(doc["hash"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


# ---- engine entry points -------------------------------------------------------------------

def _summarize(operation: Operation, value: Any) -> None:
    """Snapshots, bytes and counters from an engine report (``as_dict()`` or a dict)."""
    if hasattr(value, "wrapped") and hasattr(value, "id") and hasattr(value, "type"):  # slot
        operation.result.update({"slot_id": str(value.id), "slot_type": str(value.type)})
        return
    doc = value.as_dict() if hasattr(value, "as_dict") else value
    if not isinstance(doc, dict):
        return
    for key in ("removed", "copied"):
        ids = doc.get(key)
        if isinstance(ids, list):
            for sid in ids:
                operation.add_snapshot(str(sid))
    mapping = doc.get("snapshots")
    if isinstance(mapping, dict):
        for dst in mapping.values():
            operation.add_snapshot(str(dst))
    for key in ("bytes_freed", "bytes_uploaded", "bytes_total"):
        if isinstance(doc.get(key), int):
            operation.bytes += doc[key]
            break
    operation.result.update({k: v for k, v in doc.items() if isinstance(v, (int, float))
                             and (not isinstance(v, bool) or k in ("ok", "dry_run"))})
    if doc.get("ok") is False:
        operation.outcome = "damaged"
        errors = doc.get("errors")
        if isinstance(errors, list) and errors:
            operation.result["first_error"] = str(errors[0])[:300]


def recorded(op: str, repo_arg: str = "repo") -> Callable[[F], F]:
    """Decorate an engine function taking a repository: each call is one audited operation
    (simple arguments recorded, the report summarised, a failure recorded as such)."""
    def wrap(fn: F) -> F:
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def inner(*a: Any, **kw: Any) -> Any:
            bound = sig.bind(*a, **kw)
            repo = bound.arguments[repo_arg]
            args = {k: v.url if hasattr(v, "backend") and hasattr(v, "url") else v
                    for k, v in bound.arguments.items() if k != repo_arg
                    and (isinstance(v, (str, int, float, bool, timedelta))
                         or hasattr(v, "backend"))}
            with audited(repo, op, **args) as operation:
                value = fn(*a, **kw)
                _summarize(operation, value)
                return value
        return inner  # type: ignore[return-value]
    return wrap


def snapshot_written(repo: Repository, snap: Any) -> None:
    """A backup's snapshot was committed: part of the running operation, or its own record."""
    stats = getattr(snap, "stats", None)
    nbytes = int(getattr(stats, "bytes_total", 0) or 0)
    outer = current(repo)
    if outer is not None:
        outer.add_snapshot(snap.id, nbytes)
        return
    write_record(repo, "backup", {"source": snap.source_name, "kind": snap.kind,
                                  "source_kind": snap.source_kind}, "ok", None, [snap.id],
                 nbytes, {"bytes_stored": int(getattr(stats, "bytes_stored", 0) or 0),
                          "files": int(getattr(stats, "files", 0) or 0)})


def backup_failed(repo: Repository, source: str, kind: str, error: BaseException) -> None:
    """A backup's writer ended by an exception: recorded unless a running operation will."""
    if current(repo) is not None:
        return
    message = (str(error).splitlines() or [""])[0] if isinstance(error, StrongroomError) \
        else type(error).__name__
    write_record(repo, "backup", {"source": source, "kind": kind},
                 "interrupted" if isinstance(error, KeyboardInterrupt) else "failed", message)


# ---- operations spanning a whole command (the CLI) -----------------------------------------

def begin(repo: Repository, op: str, **args: Any) -> Operation:
    """Start recording ``op`` until :func:`end` (for a command that opens a repository and
    ends later: the CLI). Engine operations inside it fold into it."""
    operation = Operation(repo, op, dict(args))
    _ACTIVE.set((*_ACTIVE.get(), operation))
    return operation


def end(operations: list[Operation], exit_code: int, error: str | None = None) -> None:
    """Write the records of operations started with :func:`begin`: ``ok`` for exit 0, else
    ``failed`` (the ``error:`` line's message, or the exit code)."""
    still = tuple(o for o in _ACTIVE.get() if all(o is not x for x in operations))
    _ACTIVE.set(still)
    for operation in operations:
        if exit_code == 0:
            outcome, message = operation.outcome or "ok", None
        else:
            outcome = operation.outcome or ("interrupted" if exit_code == 130 else "failed")
            message = (error or "").splitlines()[0][:500] if error else f"exit {exit_code}"
        operation.result.setdefault("exit", exit_code)
        write_record(operation.repo, operation.op, operation.args, outcome, message,
                     operation.snapshots, operation.bytes, operation.result)
