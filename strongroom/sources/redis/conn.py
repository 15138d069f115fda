"""Redis endpoints: URL parsing without leaking passwords, connections, one-line errors."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from strongroom.errors import ConfigError, SourceError, SourceUnreachable


@dataclass(frozen=True)
class Endpoint:
    """Where a Redis server is and how to log in; ``repr`` never shows the password."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False

    def __repr__(self) -> str:
        return f"Endpoint({self.label})"

    @property
    def label(self) -> str:
        """``redis://host:port`` (user shown, password never)."""
        user = f"{self.username}@" if self.username else ""
        return f"{'rediss' if self.tls else 'redis'}://{user}{self.host}:{self.port}"

    def client(self, db: int = 0, timeout: float = 60.0) -> redis.Redis:
        return redis.Redis(host=self.host, port=self.port, db=db, username=self.username,
                           password=self.password, ssl=self.tls, socket_connect_timeout=10,
                           socket_timeout=timeout, retry=Retry(ExponentialBackoff(1, 0.1), 2))


def parse_url(url: str, password_env: str | None = None, password: str | None = None
              ) -> Endpoint:
    """``redis://[user[:password]@]host[:port]``; the password may also come from an env var
    (``password_env``) or be given in-process (``password``, e.g. from a Prefect block)."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise ConfigError(f"not a redis URL: {redact(url)!r} (expected redis://host:port)")
    try:
        port = parts.port or 6379
    except ValueError:
        raise ConfigError(f"bad port in redis URL {redact(url)!r}") from None
    if password is None and parts.password:
        password = unquote(parts.password)
    if password_env:
        if password_env not in os.environ:
            raise ConfigError(f"environment variable {password_env} (redis password) is not set")
        password = os.environ[password_env]
    return Endpoint(parts.hostname, port, unquote(parts.username) if parts.username else None,
                    password, parts.scheme == "rediss")


def redact(url: str) -> str:
    """The URL with any password removed."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return parts._replace(netloc=f"{user}@{netloc}" if user else netloc).geturl()


@contextmanager
def errors(ep: Endpoint, what: str = "redis") -> Iterator[None]:
    """Turn redis-py exceptions into SourceError one-liners naming ``ep`` (no secrets): a server
    that is down, refusing, timing out, dropping the connection or still loading its data is
    SourceUnreachable."""
    try:
        yield
    except redis.exceptions.AuthenticationError:
        raise SourceError(f"{what} at {ep.label}: authentication failed (wrong or missing "
                          "password)") from None
    except redis.exceptions.AuthorizationError as exc:  # a ConnectionError, yet not transient
        raise SourceError(f"{what} at {ep.label}: permission denied "
                          f"({str(exc).splitlines()[0] if str(exc) else 'NOPERM'})") from None
    except redis.exceptions.ResponseError as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if msg.startswith(("NOAUTH", "WRONGPASS", "invalid username-password")):
            raise SourceError(f"{what} at {ep.label}: authentication failed ({msg.split()[0]})"
                              ) from None
        if msg.startswith("NOPERM"):
            raise SourceError(f"{what} at {ep.label}: permission denied ({msg})") from None
        if msg.startswith(("LOADING", "MASTERDOWN")):  # starting up, or its primary is gone
            raise SourceUnreachable(f"{what} at {ep.label}: {msg}") from None
        raise SourceError(f"{what} at {ep.label}: {msg}") from None
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if ep.password:
            reason = reason.replace(ep.password, "***")
        raise SourceUnreachable(f"cannot reach {what} at {ep.label}: {reason}") from None


def connect(ep: Endpoint, what: str = "redis", timeout: float = 60.0) -> redis.Redis:
    """A client that has answered PING (so reachability and auth are proven)."""
    client = ep.client(timeout=timeout)
    with errors(ep, what):
        client.ping()
    return client


def database_count(client: redis.Redis) -> int:
    """How many databases the server has (16, Redis's default, when CONFIG is not allowed)."""
    try:
        return int(client.config_get("databases").get("databases", 16))
    except redis.exceptions.ResponseError:  # CONFIG not allowed for this user
        return 16
