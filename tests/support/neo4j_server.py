"""Start the test Neo4j (official neo4j-harness, built by tests/neo4j/pom.xml) on a free port."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

LAUNCHER_DIR = Path(__file__).resolve().parents[1] / "neo4j"
CLASSES = LAUNCHER_DIR / "target" / "classes"
LIB = LAUNCHER_DIR / "target" / "lib"
START_TIMEOUT_S = 120
STOP_TIMEOUT_S = 30


@dataclass
class Neo4jServer:
    uri: str
    port: int
    user: str = "neo4j"
    password: str | None = field(default=None, repr=False)
    password_env: str | None = None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launcher_built() -> bool:
    return (CLASSES / "strongroom" / "Neo4jLauncher.class").is_file() and LIB.is_dir()


@contextlib.contextmanager
def neo4j_server(auth: bool = True, heap: str = "1g") -> Iterator[Neo4jServer]:
    """A running harness on 127.0.0.1; with ``auth`` user neo4j has a random password,
    passed to the JVM through an environment variable (never on its command line)."""
    java = shutil.which("java")
    if not java or not launcher_built():
        raise RuntimeError("the Neo4j test launcher is not built: run "
                           "mvn -q -B -f tests/neo4j/pom.xml package -DskipTests")
    port = free_port()
    env_name = "STRONGROOM_TEST_NEO4J_PASSWORD"
    password = secrets.token_urlsafe(12) if auth else None
    env = dict(os.environ)
    if password:
        env[env_name] = password
    workdir = tempfile.mkdtemp(prefix="strongroom-neo4j-")
    log = open(Path(workdir) / "launcher.log", "wb")  # noqa: SIM115 - closed below
    cmd = [java, f"-Xmx{heap}", "-XX:+UseSerialGC", "-cp", f"{CLASSES}{os.pathsep}{LIB}/*",
           "strongroom.Neo4jLauncher", str(port), workdir] + ([env_name] if password else [])
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                            env=env)
    ready = threading.Event()

    def watch() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(b"READY "):
                ready.set()

    threading.Thread(target=watch, daemon=True, name="neo4j-launcher-out").start()
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not ready.wait(0.2):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = (Path(workdir) / "launcher.log").read_bytes()[-2000:].decode(
                    errors="replace")
                raise RuntimeError(f"Neo4j launcher did not become ready: {tail}")
        yield Neo4jServer(f"bolt://127.0.0.1:{port}", port, "neo4j", password,
                          env_name if password else None)
    finally:
        if proc.stdin:
            with contextlib.suppress(OSError):
                proc.stdin.close()  # the launcher stops when its stdin closes
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)
