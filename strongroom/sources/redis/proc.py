"""A private redis-server process on a free loopback port (scratch loads, AOF rebuilds, tests)."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from strongroom.errors import NotSupported, SourceError

REDIS_SERVER = os.environ.get("STRONGROOM_REDIS_SERVER", "redis-server")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_binary() -> str:
    path = shutil.which(REDIS_SERVER)
    if not path:
        raise NotSupported("redis-server is not installed (needed to load and check snapshots)")
    return path


class RedisProcess:
    """``redis-server`` in ``workdir`` on 127.0.0.1, protected by a random password by default.

    ``settings`` are extra config lines (``{"appendonly": "yes"}``); the config file is 0600 so
    the password never shows in a process list. Use as a context manager or call start()/stop().
    """

    def __init__(self, workdir: Path, *, settings: dict[str, str] | None = None,
                 password: str | None = "", start_timeout: float = 60.0) -> None:
        self.workdir = Path(workdir)
        self.settings = dict(settings or {})
        self.password = secrets.token_hex(16) if password == "" else password
        self.start_timeout = start_timeout
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.log_path = self.workdir / f"redis-{os.getpid()}-{id(self)}.log"

    # -- lifecycle ---------------------------------------------------------------------------
    def _write_config(self) -> Path:
        lines = {
            "bind": "127.0.0.1", "port": str(self.port), "dir": str(self.workdir),
            "dbfilename": "dump.rdb", "save": '""', "appendonly": "no", "daemonize": "no",
            "logfile": str(self.log_path), "protected-mode": "no",
        }
        lines.update(self.settings)
        if self.password:
            lines["requirepass"] = self.password
        conf = self.workdir / f".redis-{self.port}.conf"
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("".join(f"{k} {v}\n" for k, v in lines.items()))
        return conf

    def start(self) -> RedisProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        binary = server_binary()
        last = ""
        for _ in range(3):  # a port taken between choosing and binding: try another
            self.port = free_port()
            conf = self._write_config()
            self.proc = subprocess.Popen([binary, str(conf)], stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                self._wait_ready()
                conf.unlink(missing_ok=True)
                return self
            except SourceError as exc:
                last = str(exc)
                self._kill()
                conf.unlink(missing_ok=True)
                if "Address already in use" not in last:
                    break
        raise SourceError(last)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise SourceError(f"redis-server exited at start-up: {self.log_tail()}")
            try:
                info = self.client().info("persistence")
                if not info.get("loading"):
                    return
            except (redis.exceptions.ConnectionError, redis.exceptions.BusyLoadingError,
                    redis.exceptions.TimeoutError):
                pass
            time.sleep(0.05)
        raise SourceError(f"redis-server did not become ready within {self.start_timeout:.0f} s")

    def log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no log"
        errs = [ln for ln in lines if " # " in ln] or lines
        return errs[-1].split(" # ", 1)[-1].strip() if errs else "no log"

    def client(self, db: int = 0, **kw) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, db=db, password=self.password,
                           socket_connect_timeout=5, socket_timeout=kw.pop("timeout", 60),
                           retry=Retry(NoBackoff(), 0), **kw)

    def stop(self, *, save: bool = False, timeout: float = 30.0) -> None:
        """SHUTDOWN NOW (NOSAVE unless ``save``) and wait; kill if it does not go."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.client(timeout=timeout).shutdown(save=save, nosave=not save, now=True)
            except redis.exceptions.ConnectionError:
                pass  # the normal outcome: the server closed the connection
            except redis.exceptions.RedisError:
                self._kill()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._kill()
        self.proc = None

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def __enter__(self) -> RedisProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
