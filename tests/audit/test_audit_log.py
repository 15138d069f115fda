"""The audit log: what operations record, and ``audit --verify`` naming every kind of
tampering (removed, altered, reordered, forged, cut short), on local disk and moto S3."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from strongroom import audit
from strongroom.audit import log as audit_log
from strongroom.errors import SourceError
from strongroom.policy.retention import RetentionPolicy
from strongroom.repository.forget import forget, plan_for
from strongroom.repository.prune import prune
from strongroom.repository.verify import verify
from tests.audit.conftest import PASSWORD
from tests.tiers.helpers import backup, new_repo, open_repo, random_files


def _records(repo: Any) -> list[dict[str, Any]]:
    return [r.doc for r in audit_log.read_records(repo.backend)]


def test_cli_operations_are_recorded(cli, repo_env: dict[str, str], tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("hello")
    cli("init")
    first = json.loads(cli("backup", "files", str(src), "--json").stdout)
    cli("verify")
    cli("forget", "--keep-last", "1", "--name", str(src))
    cli("prune", "--grace", "0")
    refused = cli("restore", "latest", "--target", str(src), check=False)  # not empty
    assert refused.returncode == 15
    (tmp_path / "new.pw").write_text("second password")
    cli("key", "add", "--new-password-file", str(tmp_path / "new.pw"))
    rows = json.loads(cli("audit", "--json").stdout)
    ops = [(r["op"], r["outcome"]) for r in rows]
    assert ops == [("init", "ok"), ("backup files", "ok"), ("verify", "ok"), ("forget", "ok"),
                   ("prune", "ok"), ("restore", "failed"), ("key add", "ok")]
    assert [r["seq"] for r in rows] == list(range(1, 8))
    backup_row = rows[1]
    snap_id = first.get("id") or first.get("snapshot", {}).get("id")
    assert backup_row["snapshots"] and (snap_id is None or backup_row["snapshots"] == [snap_id])
    assert backup_row["bytes"] == 5
    assert backup_row["user"] and backup_row["host"] and backup_row["slot"]
    assert rows[2]["result"]["ok"] is True
    assert "not empty" in rows[5]["error"] and rows[5]["result"]["exit"] == 15
    assert rows[6]["result"].get("slot_type") == "password"
    raw = json.dumps(rows)
    assert PASSWORD not in raw and "second password" not in raw
    assert "password_file" not in raw
    listed = cli("audit").stdout
    assert "backup files" in listed and "failed: restore target" in listed
    assert json.loads(cli("audit", "--json", "--since", "2000-01-01").stdout)
    assert json.loads(cli("audit", "--json", "--since", "7d").stdout)
    bad = cli("audit", "--since", "yesterday-ish", check=False)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ")
    ok = cli("audit", "--verify")
    assert "audit log intact: 7 record(s)" in ok.stdout  # the listings added nothing
    assert json.loads(cli("audit", "--json").stdout)[-1]["op"] == "audit verify"


def test_status_reads_are_recorded(cli, tmp_path: Path) -> None:
    """`status` reads snapshots and storage like `snapshots` does: it leaves a record (with
    its 3-2-1 verdict's exit code) in each repository it opened."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("hello")
    cli("init")
    cli("backup", "files", str(src))
    status = cli("status", "--json", check=False)
    assert status.returncode in (0, 4), status.stderr  # one copy: 3-2-1 broken, exit 4
    rows = json.loads(cli("audit", "--json").stdout)
    last = rows[-1]
    assert last["op"] == "status" and last["result"]["exit"] == status.returncode
    assert last["outcome"] == ("ok" if status.returncode == 0 else "failed")
    assert PASSWORD not in json.dumps(rows)


def _seeded(url: str, opts: dict[str, Any], n: int = 5) -> Any:
    repo = new_repo(url, options=opts)
    for i in range(n - 1):
        audit.write_record(repo, "test", {"i": i}, "ok")
    return repo


def _tamper(repo: Any, how: str) -> str:
    b = repo.backend
    key = audit_log.record_key
    if how == "removed":
        b.delete(key(3))
        return "audit record 3 is missing (removed)"
    if how == "altered":
        doc = json.loads(b.get(key(2)))
        doc["outcome"] = "failed"
        b.delete(key(2))
        b.put(key(2), json.dumps(doc).encode())
        return "audit record 2 fails its MAC"
    if how == "reordered":
        two, three = b.get(key(2)), b.get(key(3))
        b.delete(key(2))
        b.delete(key(3))
        b.put(key(2), three)
        b.put(key(3), two)
        return "audit record 2 says it is record 3 (reordered or moved)"
    if how == "forged":  # a record added by someone without the key, correctly linked
        prev = audit_log.record_hash(b.get(key(5)))
        body = {"v": 1, "seq": 6, "prev": prev, "op": "forget", "outcome": "ok"}
        b.put(key(6), audit_log.seal(b"\0" * 32, body))
        return "audit record 6 is under another key and no later record vouches for it"
    if how == "forged-same-key-id":  # claims the real key id, MAC made up
        prev = audit_log.record_hash(b.get(key(5)))
        body = {"v": 1, "seq": 6, "prev": prev, "op": "forget", "outcome": "ok",
                "key": audit_log.key_id(audit.audit_key(repo)), "mac": "00" * 32}
        b.put(key(6), json.dumps(body).encode())
        return "audit record 6 fails its MAC"
    if how == "stray":
        b.put("audit/000000000003-extra", b"{}")
        return "audit/000000000003-extra: not an audit record name"
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["removed", "altered", "reordered", "forged",
                                 "forged-same-key-id", "stray"])
def test_verify_names_the_tampered_record(target, how: str) -> None:
    url, opts = target
    repo = _seeded(url, opts)
    assert audit_log.verify(repo.backend, audit.audit_key(repo)).ok
    expected = _tamper(repo, how)
    result = audit_log.verify(repo.backend, audit.audit_key(repo))
    assert not result.ok
    assert any(expected in p for p in result.problems), result.problems


def test_report_summary_counts_and_verifies_in_one_pass(tmp_path: Path) -> None:
    """The reports' numbers: counts per operation and outcome, failures, refused second-factor
    codes, records of flow runs, and whether the chain verifies (tampering flips it)."""
    repo = _seeded(str(tmp_path / "r"), {})
    audit.write_record(repo, "mfa refused", {"action": "key remove"}, "refused", "wrong code")
    audit.write_record(repo, "backup", {}, "failed", "source down")
    with audit.context(flow_run="run-1"):
        audit.write_record(repo, "backup", {}, "ok")
    got = audit.report_summary(repo)
    assert got == {"records": 8, "by_operation": {"init": 1, "test": 4, "mfa refused": 1,
                                                  "backup": 2},
                   "by_outcome": {"ok": 6, "refused": 1, "failed": 1}, "from_flow_runs": 1,
                   "verified": True, "chain_records": 8, "problems": [], "failed": 1,
                   "second_factor_refusals": 1}
    since = audit_log.read_records(repo.backend)
    sixth = next(r for r in since if r.seq == 6).time
    assert audit.report_summary(repo, since=sixth)["records"] == 3  # the chain still whole
    _tamper(repo, "altered")
    bad = audit.report_summary(repo)
    assert bad["verified"] is False and "audit record 2 fails its MAC" in bad["problems"][0]


def test_verify_catches_a_log_cut_short(target) -> None:
    url, opts = target
    repo = _seeded(url, opts)
    head = audit.known_head(repo.id)
    assert head is not None and head[0] == 5  # this client wrote record 5
    repo.backend.delete(audit_log.record_key(5))
    result = audit_log.verify(repo.backend, audit.audit_key(repo), head)
    assert any("audit records 5..5 are missing" in p for p in result.problems), result.problems
    # without this client's memory the cut is invisible: that is what Object Lock is for
    assert audit_log.verify(repo.backend, audit.audit_key(repo)).ok


def test_cli_verify_exit_13_one_line(cli, repo_env: dict[str, str]) -> None:
    cli("init")
    url = repo_env["STRONGROOM_REPOSITORY"]
    opts = {"endpoint": repo_env["AWS_ENDPOINT_URL"]} if "AWS_ENDPOINT_URL" in repo_env else {}
    repo = open_repo(url, PASSWORD, opts)
    for i in range(4):
        audit.write_record(repo, "test", {"i": i}, "ok")
    _tamper(repo, "altered")
    proc = cli("audit", "--verify", check=False)
    assert proc.returncode == 13
    errors = proc.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("error: audit log of ")
    assert "audit record 2 fails its MAC" in errors[0]
    assert "tampered: audit record 2 fails its MAC" in proc.stdout
    assert "Traceback" not in proc.stderr and PASSWORD not in proc.stderr + proc.stdout
    as_json = json.loads(cli("audit", "--verify", "--json", check=False).stdout)
    assert as_json["ok"] is False and as_json["problems"]


def test_two_backups_and_a_prune_at_once_keep_one_chain(target) -> None:
    url, opts = target
    setup = new_repo(url, options=opts, pack_target=64 * 1024)
    for i in range(3):
        backup(setup, random_files(i, count=3, size=30_000), source="churn")
    failures: list[str] = []
    start = threading.Barrier(3)

    def backups(source: str, seed: int) -> None:
        try:
            repo = open_repo(url, options=opts)
            start.wait()
            for i in range(3):
                backup(repo, random_files(seed + i, count=3, size=30_000), source=source)
        except Exception as exc:  # noqa: BLE001 - reported below
            failures.append(f"{source}: {exc!r}")

    def pruner() -> None:
        try:
            repo = open_repo(url, options=opts)
            start.wait()
            for _ in range(2):
                forget(repo, plan_for(repo, RetentionPolicy(keep_last=1), source_name="churn"))
                prune(repo, grace=timedelta(0), lock_wait_s=60)
        except Exception as exc:  # noqa: BLE001
            failures.append(f"prune: {exc!r}")

    threads = [threading.Thread(target=backups, args=("a", 100)),
               threading.Thread(target=backups, args=("b", 200)),
               threading.Thread(target=pruner)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not failures, failures
    repo = open_repo(url, options=opts)
    result = audit_log.verify(repo.backend, audit.audit_key(repo))
    assert result.ok, result.problems
    ops = [d["op"] for d in _records(repo)]
    # init, 3 setup backups, then 6 backups, 2 forgets and 2 prunes in some interleaving
    assert ops[:4] == ["init", "backup", "backup", "backup"]
    assert sorted(ops[4:]) == sorted(["backup"] * 6 + ["forget", "prune"] * 2)
    assert [d["seq"] for d in _records(repo)] == list(range(1, 15))


def test_many_writers_racing_for_numbers(target) -> None:
    url, opts = target
    repo = new_repo(url, options=opts)
    audit_log._HEADS.clear()  # every writer starts from the search, not this process's hint

    def writer(n: int) -> None:
        r = open_repo(url, options=opts)
        for i in range(6):
            audit.write_record(r, "race", {"writer": n, "i": i}, "ok")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    result = audit_log.verify(repo.backend, audit.audit_key(repo))
    assert result.ok and result.records == 31, result.problems


def test_failures_context_and_nesting(target, monkeypatch: pytest.MonkeyPatch) -> None:
    url, opts = target
    repo = new_repo(url, options=opts)
    with pytest.raises(SourceError):
        with repo.writer(source_name="db", source_kind="files", kind="full"):
            raise SourceError("database went away")
    monkeypatch.setenv(audit.CONTEXT_ENV, "flow_run=abc,deployment=nightly")
    with audit.context(flow_run="1234-flow", task_run="t-1"):
        snap = backup(repo, {"f": b"x" * 10})
    monkeypatch.delenv(audit.CONTEXT_ENV)
    with audit.audited(repo, "restore", target="/tmp/x") as op:
        op.add_snapshot(snap.id)
        verify(repo)  # folds into the restore record
    assert verify(repo).ok
    docs = _records(repo)
    assert [(d["op"], d["outcome"]) for d in docs] == [
        ("init", "ok"), ("backup", "failed"), ("backup", "ok"), ("restore", "ok"),
        ("verify", "ok")]
    assert docs[1]["error"] == "database went away" and docs[1]["args"]["source"] == "db"
    assert docs[2]["context"] == {"flow_run": "1234-flow", "deployment": "nightly",
                                  "task_run": "t-1"}
    assert docs[3]["snapshots"] == [snap.id] and docs[3]["result"]["ok"] is True
    counts = audit_log.summary(repo.backend)
    assert counts == {"records": 5, "by_operation": {"init": 1, "backup": 2, "restore": 1,
                                                     "verify": 1},
                      "by_outcome": {"ok": 4, "failed": 1}, "from_flow_runs": 1}


def test_archive_target_locks_audit_records(moto_endpoint: str) -> None:
    import secrets

    from tests.support.moto_server import s3_client

    bucket = f"archive-{secrets.token_hex(5)}"
    opts = {"endpoint": moto_endpoint, "object_lock_mode": "COMPLIANCE",
            "object_lock_days": "30", "tier": "archive"}
    repo = new_repo(f"s3://{bucket}/t", options=opts)
    audit.write_record(repo, "test", {}, "ok")
    s3 = s3_client(moto_endpoint)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="t/audit/")["Contents"]]
    assert len(keys) == 2
    for key in keys:
        assert s3.head_object(Bucket=bucket, Key=key)["ObjectLockMode"] == "COMPLIANCE"
    assert repo.backend.protection("audit/000000000001")  # and strongroom will not delete it


def test_writers_in_separate_processes(target) -> None:
    """Separate processes (no shared memory at all) appending at once: one linear chain."""
    import subprocess
    import sys

    url, opts = target
    new_repo(url, options=opts)
    script = (
        "import sys, json\n"
        "from strongroom import audit\n"
        "from tests.tiers.helpers import open_repo\n"
        "url, opts, n = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]\n"
        "r = open_repo(url, options=opts)\n"
        "for i in range(5):\n"
        "    assert audit.write_record(r, 'race', {'proc': n, 'i': i}, 'ok')\n")
    procs = [subprocess.Popen([sys.executable, "-c", script, url, json.dumps(opts), str(n)],
                              cwd=Path(__file__).parents[2]) for n in range(3)]
    assert [p.wait(300) for p in procs] == [0, 0, 0]
    repo = open_repo(url, options=opts)
    result = audit_log.verify(repo.backend, audit.audit_key(repo))
    assert result.ok and result.records == 16, result.problems
    per_proc = {}
    for doc in _records(repo)[1:]:
        per_proc.setdefault(doc["args"]["proc"], []).append(doc["args"]["i"])
    assert per_proc == {str(n): [0, 1, 2, 3, 4] for n in range(3)}
