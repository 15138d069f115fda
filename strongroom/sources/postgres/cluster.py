"""Starting and stopping a PostgreSQL server on a data directory (tests and restores)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from strongroom.errors import SourceError
from strongroom.sources.postgres.pgbin import binary, last_error, run, server_user_kwargs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A server on ``datadir`` listening on 127.0.0.1:``port`` and a socket in ``sockdir``."""

    datadir: Path
    port: int
    sockdir: Path
    version: int = 15
    logfile: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)

    @property
    def user_kwargs(self) -> dict[str, Any]:
        return server_user_kwargs(self.datadir)

    @property
    def log(self) -> Path:
        return self.logfile or self.datadir.parent / f"{self.datadir.name}.log"

    def start(self, timeout: float = 120, wait: bool = True) -> None:
        opts = " ".join(f"-c {k}={v}" for k, v in {
            "port": str(self.port), "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.sockdir), **self.options}.items())
        env = {**os.environ, **self.env}
        args = [binary("pg_ctl", self.version), "-D", str(self.datadir), "-l", str(self.log),
                "-o", opts, "-t", str(int(timeout)), "start"]
        args.insert(-1, "-w" if wait else "-W")
        self.log.touch()
        kw = self.user_kwargs
        if kw:
            os.chown(self.log, kw["user"], kw["group"])
        proc = run(args, timeout=timeout + 10, env=env, check=False, **kw)
        if proc.returncode != 0:
            raise SourceError(f"PostgreSQL did not start on {self.datadir}: {self.log_error()}")

    def log_error(self) -> str:
        """The server log's last FATAL/PANIC line that says why it stopped (lines answering a
        client that connected meanwhile, "the database system is ...", come last only)."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "no log"
        fatal = [ln for ln in text.splitlines()[-40:] if "FATAL" in ln or "PANIC" in ln]
        causes = [ln for ln in fatal if "the database system is" not in ln] or fatal
        return last_error("\n".join(causes) or text[-2000:])

    def stop(self, mode: str = "fast", timeout: float = 60) -> None:
        if not (self.datadir / "postmaster.pid").exists():
            return
        run([binary("pg_ctl", self.version), "-D", str(self.datadir), "-m", mode, "-w", "-t",
             str(int(timeout)), "stop"], timeout=timeout + 10, check=False, **self.user_kwargs)

    def pid(self) -> int | None:
        try:
            return int((self.datadir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def running(self) -> bool:
        pid = self.pid()
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    def conninfo(self, dbname: str = "postgres", user: str = "postgres") -> str:
        return f"host={self.sockdir} port={self.port} dbname={dbname} user={user}"

    def connect(self, dbname: str = "postgres", user: str = "postgres",
                **kwargs: Any) -> psycopg.Connection[Any]:
        return psycopg.connect(self.conninfo(dbname, user), autocommit=True, **kwargs)

    def wait_ready(self, timeout: float = 600, promoted: bool = True) -> None:
        """Wait until connections are accepted (and recovery has ended when ``promoted``)."""
        deadline = time.monotonic() + timeout
        last = ""
        pause = 0.02  # promotion often follows within a fraction of a second: look soon
        while time.monotonic() < deadline:
            if not self.running():
                raise SourceError(f"PostgreSQL on {self.datadir} stopped: {self.log_error()}")
            try:
                with self.connect(connect_timeout=5) as conn:
                    row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
                    if not promoted or not row[0]:
                        return
                    last = "still in recovery"
            except psycopg.OperationalError as exc:
                last = str(exc).strip().splitlines()[0] if str(exc).strip() else "not ready"
            time.sleep(pause)
            pause = min(pause * 1.5, 0.3)
        raise SourceError(f"PostgreSQL on {self.datadir} not ready after {timeout:.0f} s "
                          f"({last})")


@dataclass(frozen=True)
class PidFile:
    """What ``postmaster.pid`` of a data directory says: no file, a live postmaster of that
    directory, or a stale file (a crashed server: its process is gone, or the pid now names
    a process that is not this directory's postmaster)."""

    datadir: Path
    present: bool
    pid: int | None = None
    live: bool = False

    @property
    def stale(self) -> bool:
        return self.present and not self.live

    def describe(self) -> str:
        """One line for an operator."""
        if not self.present:
            return f"no server running in {self.datadir}"
        if self.live:
            return f"a server is running in {self.datadir} (pid {self.pid})"
        return ("no server running: stale postmaster.pid of a crashed server "
                f"(pid {self.pid if self.pid is not None else 'unreadable'})")


def read_pidfile(datadir: Path) -> PidFile:
    """Look at ``datadir/postmaster.pid`` and at the process it names (see :class:`PidFile`)."""
    datadir = Path(datadir)
    try:
        text = (datadir / "postmaster.pid").read_text(errors="replace")
    except FileNotFoundError:
        return PidFile(datadir, present=False)
    except OSError:
        return PidFile(datadir, present=True, live=True)  # cannot look: assume it runs
    try:
        pid = int(text.split()[0])
    except (ValueError, IndexError):
        return PidFile(datadir, present=True)  # empty or torn: no postmaster wrote it fully
    return PidFile(datadir, present=True, pid=pid, live=postmaster_of(pid, datadir))


def postmaster_of(pid: int, datadir: Path) -> bool:
    """True when process ``pid`` is alive and is the postmaster of ``datadir`` (its program
    is ``postgres``/``postmaster`` and its working directory, where a postmaster always runs,
    is ``datadir``). Where that cannot be read (no /proc, no permission) a live process counts
    as the postmaster: never take a running server for a crashed one."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    proc = Path(f"/proc/{pid}")
    if not Path("/proc/self").exists():
        return True
    try:
        argv = (proc / "cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return False
    except OSError:
        return True
    program = os.path.basename(argv[0].decode(errors="replace")) if argv else ""
    if program not in ("postgres", "postmaster"):
        return False  # gone (a zombie has no command line), or another program now
    try:
        cwd, own = os.stat(proc / "cwd"), os.stat(datadir)
    except FileNotFoundError:
        return False
    except OSError:
        args = [a.decode(errors="replace") for a in argv]
        given = [args[i + 1] for i, a in enumerate(args[:-1]) if a == "-D"]
        return not given or any(os.path.realpath(d) == os.path.realpath(datadir)
                                for d in given)
    return (cwd.st_dev, cwd.st_ino) == (own.st_dev, own.st_ino)


def kill_hard(server: Server) -> None:
    """kill -9 the postmaster (its children exit on their own)."""
    pid = server.pid()
    if pid:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass


def run_sql_file(server: Server, db: str, text: str, timeout: float = 120) -> None:
    run([binary("psql", server.version), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d",
         server.conninfo(db), "-c", text], timeout=timeout)


def subprocess_env(extra: dict[str, str]) -> dict[str, str]:
    return {**os.environ, **extra}


__all__ = ["PidFile", "Server", "free_port", "kill_hard", "postmaster_of", "read_pidfile",
           "run_sql_file", "subprocess"]
