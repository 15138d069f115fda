"""Many hosts on one machine: a real ``prefect server``, a process work pool, one ``prefect
worker`` per host (each with its own PREFECT_HOME and working directory) and one platform file
whose files sources each run on their own host. Used by the work-pool test and the benchmark.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from deployments.up import Stack, free_port, stack_env, wait_healthy

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "pw-work-pools"
BUCKET = "strongroom"


class Cluster:
    """Processes of one test: the server and the workers; :meth:`stop` ends them all."""

    def __init__(self, root: Path, pool: str = "hosts") -> None:
        self.root = root
        self.pool = pool
        port = free_port()
        self.api = f"http://127.0.0.1:{port}/api"
        base = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        self.env = base | stack_env(root / "server", "127.0.0.1", port) | {
            "PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_WORKER_PREFETCH_SECONDS": "2",
            "PREFECT_LOGGING_LEVEL": "INFO", "STRONGROOM_PASSWORD": PASSWORD}
        self.stacks: list[Stack] = []
        self.workers: dict[str, Path] = {}

    def _stack(self, state: Path, env: dict[str, str]) -> Stack:
        state.mkdir(parents=True, exist_ok=True)
        stack = Stack(state, {})
        stack.env = env  # exactly this environment, not the test process's PREFECT_ settings
        self.stacks.append(stack)
        return stack

    def start_server(self, timeout_s: float = 120) -> None:
        stack = self._stack(self.root / "server", self.env)
        stack.spawn("server", [sys.executable, "-m", "prefect", "server", "start",
                               "--analytics-off"])
        wait_healthy(stack, self.api, timeout_s)

    def deploy(self, config: Path) -> str:
        """``python -m deployments.deploy`` as an operator runs it; its output."""
        proc = subprocess.run(
            [sys.executable, "-m", "deployments.deploy", "--config", str(config),
             "--work-pool", self.pool, "--create-pool"],
            env=self.env, capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return proc.stdout

    def start_worker(self, queue: str) -> None:
        """A worker for one queue, in its own directory with its own PREFECT_HOME (another
        host, as far as Prefect can tell), started outside the source tree."""
        home = self.root / "workers" / queue
        env = self.env | {"PREFECT_HOME": str(home / "prefect")}
        stack = self._stack(home, env)
        stack.spawn("worker", [sys.executable, "-m", "prefect", "worker", "start",
                               "--pool", self.pool, "--work-queue", queue,
                               "--name", f"worker-{queue}", "--type", "process"], cwd=home)
        self.workers[queue] = home / "worker.log"

    def wait_workers(self, timeout_s: float = 120) -> None:
        """Until every worker has polled its queue (the server lists it as online)."""
        from prefect.client.orchestration import get_client

        deadline = time.monotonic() + timeout_s
        names = {f"worker-{q}" for q in self.workers}
        with get_client(sync_client=True) as client:
            while time.monotonic() < deadline:
                for stack in self.stacks:
                    stack.check_alive()
                seen = {w.name for w in client.read_workers_for_work_pool(self.pool)}
                if names <= seen:
                    return
                time.sleep(0.5)
        raise AssertionError(f"workers not online within {timeout_s:.0f} s: {names}")

    def stop(self) -> None:
        for stack in reversed(self.stacks):
            stack.stop()


def platform_file(path: Path, endpoint: str, hosts: dict[str, Path], site: str = "hosts",
                  prefix: str = "repo") -> Path:
    """One S3 repository (moto), one files source per host with ``runs_on`` that host."""
    doc: dict[str, Any] = {
        "site": site, "timezone": "America/New_York",
        "keys": {"main": {"password": "${STRONGROOM_PASSWORD}"}},
        "targets": {"primary": {"url": f"s3://{BUCKET}/{prefix}", "role": "primary",
                                "key": "main", "endpoint_url": endpoint,
                                "region": "us-east-1", "access_key_id": "test",
                                "secret_access_key": "test"}},
        "sources": {f"{host}-files": {"kind": "files", "class": "files", "runs_on": host,
                                      "paths": [str(data)],
                                      "restore_target": str(data.parent / "restored")}
                    for host, data in hosts.items()},
        "schedules": {"daily-incremental": {"tier": "incremental", "cron": "0 2 * * *",
                                            "classes": ["files"], "keep": "14d"}}}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def wait_runs(ids: list[Any], timeout_s: float) -> list[Any]:
    """Flow runs by id, once every one is in a final state."""
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        while True:
            runs = [client.read_flow_run(i) for i in ids]
            if all(r.state and r.state.is_final() for r in runs):
                return runs
            if time.monotonic() > deadline:
                raise AssertionError("flow runs not final in time: " + ", ".join(
                    f"{r.name} {r.state.name if r.state else '?'}" for r in runs))
            time.sleep(0.5)
