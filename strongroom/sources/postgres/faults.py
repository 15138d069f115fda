"""Telling a PostgreSQL that is down, restarting or out of reach (worth retrying) from one that
refuses us for good (bad password, missing database): the first kind becomes
:class:`~strongroom.errors.SourceUnreachable`, so retries test the exception type.

No driver import here: the helpers read libpq's words (from psycopg or a tool's stderr) and a
psycopg error's ``sqlstate`` attribute when there is one."""

from __future__ import annotations

from strongroom.errors import SourceError, SourceUnreachable

# libpq's words for a server it cannot reach or that went away (lower case).
UNREACHABLE_WORDS = ("connection refused", "is the server running", "timeout expired",
                     "could not translate host", "network is unreachable", "no route to host",
                     "connection timed out", "server closed the connection unexpectedly",
                     "terminating connection due to administrator command",
                     "the database system is starting up",
                     "the database system is shutting down",
                     "the database system is in recovery mode",
                     "the database system is not yet accepting connections",
                     "could not receive data from server", "could not send data to server",
                     "ssl syscall error", "connection to server was lost")
# SQLSTATE classes of a lost or refused connection: 08 connection exception, 57P01 admin
# shutdown, 57P02 crash shutdown, 57P03 cannot connect now, 57P05 idle session timeout.
UNREACHABLE_SQLSTATES = ("08", "57P01", "57P02", "57P03", "57P05")


def unreachable_text(text: str) -> bool:
    """True when libpq's message says the server is down, restarting or out of reach."""
    low = (text or "").lower()
    return any(word in low for word in UNREACHABLE_WORDS)


def connection_lost(exc: BaseException) -> bool:
    """True for a driver error that lost (or never got) the connection: no SQLSTATE at all
    (a client-side failure), a connection-class SQLSTATE, or libpq's words for it."""
    state = getattr(exc, "sqlstate", None)
    if state:
        return state.startswith(UNREACHABLE_SQLSTATES)
    return unreachable_text(str(exc)) or "closed" in str(exc).lower()


def source_error(message: str, detail: str = "") -> SourceError:
    """``SourceUnreachable(message)`` when ``detail`` (or the message) is libpq saying the
    server is down or restarting, else ``SourceError(message)``."""
    if unreachable_text(detail or message):
        return SourceUnreachable(message)
    return SourceError(message)


def first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__
