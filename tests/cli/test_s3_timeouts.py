"""An S3 endpoint that accepts connections but never answers fails within about a minute,
saying so: connect and read timeouts and the number of attempts are bounded (and options)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from strongroom.storage import s3
from strongroom.storage.registry import open_backend
from tests.cli.conftest import one_line_error


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """http://127.0.0.1:PORT of a server that accepts every connection and never answers."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)  # read nothing, answer nothing, keep it open

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        server.close()


def test_silent_endpoint_fails_fast_and_says_so(cli, silent_endpoint: str) -> None:
    started = time.monotonic()
    proc = cli("snapshots", "-r", "s3://bucket/repo", "-o", f"endpoint={silent_endpoint}",
               "-o", "read_timeout=1", "-o", "max_attempts=2", check=False, timeout=120)
    took = time.monotonic() - started
    one_line_error(proc, 16, f"S3 endpoint {silent_endpoint} did not answer within 1 s",
                   "2 attempts")
    assert took < 20, f"took {took:.0f} s"  # 2 x 1 s plus back-off and start-up, not 2 x 2


def test_default_timeouts_bound_a_dead_endpoint_to_about_a_minute() -> None:
    backend = open_backend("s3://bucket/repo", {"endpoint": "http://127.0.0.1:9"})
    config = backend.client.meta.config  # type: ignore[attr-defined]
    attempts = config.retries["total_max_attempts"]
    assert (config.connect_timeout, config.read_timeout, attempts) == (
        s3.CONNECT_TIMEOUT_S, s3.READ_TIMEOUT_S, s3.MAX_ATTEMPTS)
    backoff = sum(min(20, 2 ** i) for i in range(attempts - 1))  # botocore's standard mode
    worst = attempts * max(config.connect_timeout, config.read_timeout) + backoff
    assert 45 <= worst <= 70, worst
