"""Real PostgreSQL clusters for tests: initdb in a temporary directory, a free loopback port,
wal_level=replica, a SCRAM password for the superuser and a replication role.

Tests run as root on CI; PostgreSQL refuses root, so servers run as the ``postgres`` OS user in
directories it owns. WAL reaches the repository through the receiver (a client, any user);
archive_command is exercised only where the server's user can run this Python.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from strongroom.repository import Repository
from strongroom.sources.postgres import command
from strongroom.sources.postgres.cluster import Server, free_port
from strongroom.sources.postgres.pgbin import binary, bindir, chown_tree, run, server_user_kwargs

VERSION = 15
SUPERUSER_PASSWORD = "pg-" + secrets.token_hex(8)
REPL_USER = "replicator"
REPL_PASSWORD = "repl-" + secrets.token_hex(8)
REPO_PASSWORD = "repo-" + secrets.token_hex(8)


def available() -> bool:
    try:
        return (bindir(VERSION) / "initdb").exists()
    except Exception:  # noqa: BLE001
        return False


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    """A temporary directory the server user owns (pytest's tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(prefix="sr-pg-"))
    like = server_user_kwargs()
    chown_tree(path, like)
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@dataclass
class Cluster:
    root: Path
    server: Server
    name: str = "main"
    repo_url: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def datadir(self) -> Path:
        return self.server.datadir

    def dsn(self, user: str = "postgres", dbname: str = "postgres",
            password: str | None = None) -> str:
        pw = SUPERUSER_PASSWORD if user == "postgres" else REPL_PASSWORD
        pw = pw if password is None else password
        return (f"host=127.0.0.1 port={self.port} user={user} dbname={dbname} "
                f"password={pw}")

    def nopw_dsn(self, user: str = "postgres", dbname: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user={user} dbname={dbname}"

    def connect(self, dbname: str = "postgres") -> Any:
        return self.server.connect(dbname)

    def sql(self, query: str, dbname: str = "postgres", params: Any = None) -> Any:
        with self.connect(dbname) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else None

    def pgbench(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return run([binary("pgbench", VERSION), "-h", str(self.server.sockdir), "-p",
                    str(self.port), "-U", "postgres", *args], timeout=timeout)


def initdb(root: Path, *, wal_level: str = "replica", seg_mb: int = 1,
           archive_name: str | None = None, repo_url: str | None = None,
           settings: dict[str, str] | None = None) -> Cluster:
    """Create and start a cluster under ``root``; with ``archive_name`` its archive_command is
    ``strongroom pg wal-push %p --name NAME`` into ``repo_url``."""
    data = root / "data"
    root.mkdir(parents=True, exist_ok=True)
    sock = root / "sock"
    sock.mkdir(mode=0o700)
    pwfile = root / "pw"
    pwfile.write_text(SUPERUSER_PASSWORD + "\n")
    like = server_user_kwargs()
    chown_tree(root, like)
    run([binary("initdb", VERSION), "-D", str(data), "-U", "postgres", "--pwfile", str(pwfile),
         "--auth-host=scram-sha-256", "--auth-local=trust", f"--wal-segsize={seg_mb}",
         "-E", "UTF8", "--locale=C.UTF-8"], timeout=120, **like)
    pwfile.unlink()
    conf = {
        "wal_level": wal_level, "max_wal_senders": "10" if wal_level != "minimal" else "0",
        "max_replication_slots": "10", "fsync": "off", "full_page_writes": "on",
        "shared_buffers": "32MB", "checkpoint_timeout": "30min", "max_wal_size": "256MB",
        "log_min_messages": "warning", "log_line_prefix": "'%m [%p] '",
        "wal_keep_size": "64MB" if wal_level != "minimal" else "0",
    }
    env: dict[str, str] = {}
    if archive_name:
        conf.update(archive_mode="on", archive_timeout="0",
                    archive_command="'" + command.archive_command(archive_name) + "'")
        env = archive_env(repo_url or "")
    conf.update(settings or {})
    with open(data / "postgresql.conf", "a") as fh:
        fh.write("\n" + "\n".join(f"{k} = {v}" for k, v in conf.items()) + "\n")
    with open(data / "pg_hba.conf", "a") as fh:
        fh.write("host replication all 127.0.0.1/32 scram-sha-256\n")
    server = Server(data, free_port(), sock, version=VERSION, logfile=root / "server.log",
                    env=env)
    server.start(timeout=60)
    cluster = Cluster(root, server, archive_name or "main", repo_url, env)
    if wal_level != "minimal":
        cluster.sql(f"CREATE ROLE {REPL_USER} LOGIN REPLICATION PASSWORD '{REPL_PASSWORD}'")
    return cluster


def archive_env(repo_url: str) -> dict[str, str]:
    """What the postmaster needs so its archive_command (running as postgres) can write."""
    return {"STRONGROOM_REPOSITORY": repo_url, "STRONGROOM_PASSWORD": REPO_PASSWORD,
            "STRONGROOM_ARGON2_MEMORY_KIB": os.environ.get("STRONGROOM_ARGON2_MEMORY_KIB",
                                                           "1024"),
            **command.child_env()}


def make_repo(root: Path) -> str:
    url = str(root / "repo")
    Repository.init(url, password=REPO_PASSWORD).close()
    return url


def open_repo(url: str) -> Repository:
    return Repository.open(url, password=REPO_PASSWORD)


def server_user_can_run_strongroom() -> bool:
    """Whether the server's OS user can run this interpreter (not when it lives in /root)."""
    kw = server_user_kwargs()
    argv = command.strongroom_argv()
    try:
        proc = subprocess.run([*argv, "--help"], capture_output=True, timeout=60,
                              env={**os.environ, **command.child_env()}, cwd="/", **kw)
    except (OSError, subprocess.SubprocessError):
        return False
    return proc.returncode == 0


def sr(repo_url: str, *args: str, timeout: float = 600, check: bool = True,
       env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``strongroom ARGS`` (the CLI, in a subprocess) against ``repo_url``."""
    full_env = {**os.environ, **archive_env(repo_url), **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "strongroom.sources.postgres", *args],
                          capture_output=True, text=True, timeout=timeout, env=full_env,
                          cwd="/")
    if check and proc.returncode != 0:
        raise AssertionError(f"strongroom {' '.join(args)} failed ({proc.returncode}): "
                             f"{proc.stderr.strip()[-2000:]}")
    return proc


def sr_popen(repo_url: str, *args: str, env: dict[str, str] | None = None,
             log: Path | None = None) -> subprocess.Popen[str]:
    """Start a long-running ``strongroom ARGS`` (the WAL receiver)."""
    full_env = {**os.environ, **archive_env(repo_url), **(env or {})}
    out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115
    return subprocess.Popen([sys.executable, "-m", "strongroom.sources.postgres", *args],
                            stdout=out, stderr=subprocess.STDOUT, text=True, env=full_env,
                            cwd="/")


def stop(cluster: Cluster) -> None:
    if cluster.server.running():
        cluster.server.stop(mode="immediate")
