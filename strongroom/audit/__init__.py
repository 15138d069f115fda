"""Audit log of every operation on a repository: hash-chained, MAC'd, immutable records.

:mod:`strongroom.audit.log` is the storage format (append, read, verify);
:mod:`strongroom.audit.operation` records operations (:func:`audited`, :func:`recorded`).
"""

from strongroom.audit.log import Record, VerifyResult, read_records, verify
from strongroom.audit.operation import (
    CONTEXT_ENV,
    Operation,
    audit_key,
    audited,
    backup_failed,
    context,
    current,
    known_head,
    recorded,
    remember_head,
    report_summary,
    snapshot_written,
    write_record,
)

__all__ = ["CONTEXT_ENV", "Operation", "Record", "VerifyResult", "audit_key", "audited",
           "backup_failed", "context", "current", "known_head", "read_records", "recorded",
           "remember_head", "report_summary", "snapshot_written", "verify", "write_record"]
