"""moto's S3 server mode on a free loopback port: the real S3 protocol for boto3 and minio."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import boto3
from botocore.config import Config


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def moto_server(port: int | None = None) -> Iterator[str]:
    """Run moto's S3 server in a process of its own on 127.0.0.1; yield its endpoint URL.
    Its own process, not a thread of the test's: S3 requests then never queue behind the
    test's Python threads (backups and restores racing a prune) for one GIL. A free port
    taken by another process before moto binds it is replaced by another free port."""
    for _ in range(1 if port else 3):
        chosen = port or free_port()
        endpoint = f"http://127.0.0.1:{chosen}"
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                                 "-p", str(chosen)], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            ready = _wait_ready(proc, endpoint)
        except BaseException:
            _stop(proc)
            raise
        if ready:
            break
    else:
        raise RuntimeError(f"moto server on port {chosen} exited with {proc.returncode}")
    try:
        yield endpoint
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _wait_ready(proc: subprocess.Popen, endpoint: str, timeout_s: float = 60) -> bool:
    """True once moto answers; False when it exited first (its port was taken)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=2):
                return True
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"moto server at {endpoint} did not answer within {timeout_s:.0f} s")


def s3_client(endpoint: str):  # noqa: ANN201 - boto3 client type
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test",
                        config=Config(request_checksum_calculation="when_required",
                                      response_checksum_validation="when_required"))
