"""Faults: an S3 outage is retried and the flow completes; corruption fails at once, clearly."""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.prefect.conftest import (
    backup_one,
    backup_state,
    make_tree,
    save_files_source,
    save_local_target,
    with_subflows,
)
from tests.support.moto_server import free_port, s3_client


def test_transient_classification():
    from strongroom.errors import (
        ClockSkew,
        ConfigError,
        IntegrityError,
        LockedError,
        SourceError,
        SourceUnreachable,
        StorageError,
        WrongKey,
    )
    from strongroom.repository.presence import PacksVanished
    from tasks.retry import is_transient

    assert is_transient(StorageError("cannot reach S3 endpoint"))
    assert is_transient(ConnectionResetError())
    assert not is_transient(IntegrityError("blob damaged"))
    assert not is_transient(ConfigError("bad cron"))
    assert not is_transient(WrongKey("wrong password"))
    assert not is_transient(SourceError("permission denied"))
    assert is_transient(LockedError("lost the repository lock"))  # a new attempt, a new lock
    assert is_transient(PacksVanished("2 pack(s) vanished"))  # stored anew by a new attempt
    assert not is_transient(ClockSkew("clock 600 s ahead"))  # waiting does not fix a clock
    assert is_transient(SourceUnreachable("redis at 127.0.0.1:6379: connection refused"))
    try:  # the type decides, never the words or the cause
        raise SourceError("server unreachable") from ConnectionRefusedError()
    except SourceError as exc:
        assert not is_transient(exc)


def test_storage_errors_that_waiting_cannot_cure_are_not_retried():
    """Errors as the real S3 backend words them: bad credentials, archived objects and bad
    paths fail at once; throttling, server errors and an unreachable endpoint are retried."""
    from botocore.exceptions import ClientError, EndpointConnectionError

    from strongroom.storage.s3 import S3Backend
    from tasks.retry import is_transient

    backend = S3Backend("s3://bucket/prefix", endpoint="http://127.0.0.1:9")

    def s3_error(code: str) -> Exception:
        return backend._fail(ClientError({"Error": {"Code": code, "Message": "x"}}, "GetObject"),
                             "get", "data/00/pack")

    for code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch",
                 "InvalidObjectState"):
        assert not is_transient(s3_error(code)), code
    for code in ("SlowDown", "Throttling", "InternalError", "ServiceUnavailable", "503"):
        assert is_transient(s3_error(code)), code
    assert is_transient(backend._fail(EndpointConnectionError(endpoint_url="http://x"), "get",
                                      "k"))


def test_unwritable_repository_path_fails_at_once(prefect_harness, tmp_path, names):

    (tmp_path / "a-file").write_text("not a directory")
    tgt = save_local_target(f"bad-{names}", tmp_path / "a-file" / "repo")
    src = save_files_source(f"bad-{names}", [make_tree(tmp_path / "data", files=2)])
    started = time.monotonic()
    state = backup_state("full", src, primary=tgt)
    assert state.is_failed()
    assert "Not a directory" in state.message, state.message
    assert time.monotonic() - started < 10
    assert all(r.run_count <= 1
               for r in _settled_task_runs(state.state_details.flow_run_id, "dump"))


class _Moto:
    """moto's server on one fixed loopback port, so it can go away and come back there."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.server = None

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()

    def stop(self) -> None:
        """Stop serving and close the listening socket (moto's stop() leaves it open, so
        clients would hang instead of being refused)."""
        if self.server is not None:
            wsgi = self.server._server
            self.server.stop()
            if wsgi is not None:
                wsgi.server_close()
            self.server = None


@pytest.fixture
def moto_fixed_port():
    moto = _Moto()
    moto.start()
    try:
        yield moto
    finally:
        moto.stop()


# The suite's 1 s retry base allows all three retries within 3.5 s (jitter included): on a
# loaded machine a server started once the first failure is seen may not be up by then.
RESTART_ROOM_S = [3.0, 6.0, 12.0]


def _settled_task_runs(flow_run_id, name: str, deadline_s: float = 30):
    """The task runs of a finished flow run once the server has them all in a final state
    (Prefect 3 records task runs from client events, after the flow call has returned)."""
    deadline = time.monotonic() + deadline_s
    while True:
        runs = _task_runs(flow_run_id, name)
        if runs and all(r.state and r.state.is_final() for r in runs):
            return runs
        if time.monotonic() > deadline:
            return runs
        time.sleep(0.2)


def _task_runs(flow_run_id, name: str):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(
            id=FlowRunFilterId(any_=with_subflows(client, [flow_run_id]))))
    return [r for r in runs if r.name.startswith(name)]


class _RetryAnnounced(logging.Handler):
    """Sets `event` when Prefect's task engine logs that a failed task run will be retried
    (in-process and immediate: task-run states seen through the API arrive late when
    Prefect's events worker lags)."""

    def __init__(self, task_prefix: str) -> None:
        super().__init__(level=logging.INFO)
        self.task_prefix = task_prefix
        self.event = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        name = str(getattr(record, "task_run_name", ""))
        if name.startswith(self.task_prefix) and "will start" in record.getMessage():
            self.event.set()


def test_s3_outage_is_retried_and_the_flow_completes(prefect_harness, tmp_path, names,
                                                     moto_fixed_port, monkeypatch):
    from blocks import RepositoryKey, RepositoryTarget
    from flows.backup import TIER_FLOWS
    from tasks.backup import dump

    monkeypatch.setattr(dump, "retry_delay_seconds", RESTART_ROOM_S)

    bucket = f"outage-{names}"
    s3_client(moto_fixed_port.endpoint).create_bucket(Bucket=bucket)
    RepositoryTarget(url=f"s3://{bucket}/repo", role="primary", key=RepositoryKey(password="pw"),
                     endpoint_url=moto_fixed_port.endpoint, region="us-east-1",
                     access_key_id="test", secret_access_key="test",
                     options={"max_attempts": "2"}).save(f"s3-{names}")
    data = make_tree(tmp_path / "data", files=8)
    src = save_files_source(f"s3src-{names}", [data])
    backup_one("full", src, primary=f"s3-{names}")
    (data / "d0" / "changed.txt").write_text("after the full")

    # Take the endpoint down; bring it back as soon as the dump task has failed and its
    # retry is announced (the retry waits 1.5 s or more: room for moto to start).
    moto_fixed_port.stop()
    announced = _RetryAnnounced("dump")
    task_logger = logging.getLogger("prefect.task_runs")
    task_logger.addHandler(announced)
    restarted: list[bool] = []

    finished = threading.Event()

    def restart_after_first_failure() -> None:
        announced.event.wait(timeout=60)
        if not finished.is_set():
            moto_fixed_port.start()
            restarted.append(True)

    restarter = threading.Thread(target=restart_after_first_failure, daemon=True)
    restarter.start()
    started = time.monotonic()
    try:
        state = TIER_FLOWS["incremental"](
            "incremental", [src], primary=f"s3-{names}", return_state=True)
    finally:
        task_logger.removeHandler(announced)
        finished.set()
        announced.event.set()
        restarter.join(timeout=30)
    # failed while S3 was down (its retry announced), then completed on a retry
    assert restarted, "the dump task never failed while S3 was down"
    assert state.is_completed(), state.message
    result = state.result()["sources"][src]
    assert result["snapshot"]["kind"] == "incremental"
    assert time.monotonic() - started < 60


def test_engine_words_for_a_source_that_is_down_are_transient(tmp_path):
    """Real errors from the source modules against a closed loopback port are retried; a
    wrong password is not."""
    from strongroom.errors import SourceError
    from strongroom.sources.postgres.conn import Dsn
    from strongroom.sources.redis.conn import connect, parse_url
    from tasks.retry import is_transient

    port = free_port()
    down = []
    for attempt in (lambda: connect(parse_url(f"redis://127.0.0.1:{port}"), timeout=2),
                    lambda: Dsn.parse(f"host=127.0.0.1 port={port} user=x dbname=y").connect()):
        with pytest.raises(SourceError) as err:
            attempt()
        down.append(err.value)
    assert all(is_transient(e) for e in down), [str(e) for e in down]
    assert not is_transient(SourceError("redis at 127.0.0.1:6379: authentication failed "
                                        "(wrong or missing password)"))


@pytest.mark.skipif(not shutil.which("redis-server"), reason="redis-server not installed")
def test_source_server_restarting_is_retried(prefect_harness, tmp_path, names, monkeypatch):
    """A Redis that is down when the snapshot starts and comes back: retried, completes. The
    port first holds a gate that drops the first connection (a server going down) and then
    refuses, so the first attempt fails; a real redis-server takes the port before the task's
    retry. (Task-run states seen through the API arrive late when Prefect's events lag.)"""
    import socket

    from blocks import RedisSource
    from flows.backup import TIER_FLOWS
    from flows.limits import ensure_limits
    from tasks.backup import dump

    monkeypatch.setattr(dump, "retry_delay_seconds", RESTART_ROOM_S)

    gate = socket.create_server(("127.0.0.1", 0))
    gate.settimeout(60)
    port = gate.getsockname()[1]
    RedisSource(source_name=f"cache-{names}", port=port).save(f"cache-{names}")
    ensure_limits([f"cache-{names}"])
    tgt = save_local_target(f"primary-{names}", tmp_path / "repo")
    servers: list[subprocess.Popen] = []
    dropped: list[bool] = []

    def start_after_first_failure() -> None:
        with gate:
            conn, _ = gate.accept()  # the first attempt: dropped unanswered
            conn.close()
            dropped.append(True)
        # the client's own reconnects (2, within 0.6 s) are refused: the attempt fails, and
        # only the task's retry (1.5 s or more later) can find the server started below
        time.sleep(1.5)
        servers.append(subprocess.Popen(
            [shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(tmp_path),
             "--repl-diskless-sync-delay", "0"], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL))

    starter = threading.Thread(target=start_after_first_failure, daemon=True)
    starter.start()
    try:
        state = TIER_FLOWS["snapshot"]("snapshot", [f"redis/cache-{names}"], primary=tgt,
                                       return_state=True)
        starter.join(timeout=65)
        assert dropped, "the backup never tried the server that was down"
        assert state.is_completed(), state.message
    finally:
        for proc in servers:
            proc.terminate()
            proc.wait(timeout=10)


def _flip_byte(path: Path, offset: int = 100) -> None:
    raw = bytearray(path.read_bytes())
    raw[min(offset, len(raw) - 1)] ^= 0xFF
    path.write_bytes(bytes(raw))


def test_corrupted_repository_fails_verify_clearly(prefect_harness, tmp_path, names):
    from flows.checks import verify_backups

    data = make_tree(tmp_path / "data", files=10)
    src = save_files_source(f"corrupt-{names}", [data])
    repo_dir = tmp_path / "repo"
    tgt = save_local_target(f"primary-{names}", repo_dir)
    backup_one("full", src, primary=tgt)

    packs = sorted((repo_dir / "data").rglob("*"), key=lambda p: p.stat().st_size)
    _flip_byte([p for p in packs if p.is_file()][-1])

    state = verify_backups(target=tgt, source=src, mode="read-data", return_state=True)
    assert state.is_failed()
    assert "verify of" in state.message and "failed" in state.message
    assert "pack" in state.message or "blob" in state.message
    assert "Traceback" not in state.message and "\n" not in state.message.strip()

    # A backup over the damaged repository fails too, at once: integrity errors are not retried.
    started = time.monotonic()
    state = backup_state("incremental", src, primary=tgt, verify_mode="read-data")
    assert state.is_failed()
    assert "damaged" in state.message or "does not match" in state.message \
        or "failed" in state.message
    assert time.monotonic() - started < 30
    runs = _settled_task_runs(state.state_details.flow_run_id, "")
    assert all(r.run_count <= 1 for r in runs)


def test_source_limit_is_strict_one_at_a_time(prefect_harness, names):
    from prefect.concurrency.asyncio import AcquireConcurrencySlotTimeoutError

    from flows.limits import ensure_limits, source_slot

    ensure_limits([f"files/busy-{names}"])
    errors: list[BaseException] = []

    def second() -> None:
        try:
            with source_slot(f"busy-{names}", timeout_s=1):
                pass
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    with source_slot(f"files/busy-{names}"):
        worker = threading.Thread(target=second)
        worker.start()
        worker.join(timeout=30)
    assert len(errors) == 1 and isinstance(errors[0], AcquireConcurrencySlotTimeoutError)
    with source_slot(f"busy-{names}", timeout_s=5):  # free again once the first is done
        pass
