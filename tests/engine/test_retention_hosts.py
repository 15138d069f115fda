"""Two hosts back up the same path (every host backs up /etc): retention groups by host and
source name, an incremental or differential takes its parent from its own host, and 'latest'
can be asked per host."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

OTHER = "strongroom-test-web-2"
# The engine CLI as another machine runs it: its own host id and host name.
AS_OTHER_HOST = ("import socket, sys; name = sys.argv.pop(1); socket.gethostname = lambda: name; "
                 "sys.argv[0] = 'strongroom'; from strongroom.cli import main; main()")


def other_host(repo_env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-c", AS_OTHER_HOST, OTHER, *args],
                          env={**repo_env, "STRONGROOM_HOST_ID": "web-2"}, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, f"{args} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_two_hosts_on_one_path(cli, repo_env, tmp_path: Path) -> None:
    src = tmp_path / "etc"
    src.mkdir()
    here = {"STRONGROOM_HOST_ID": "web-1"}

    def backup(step: int, *extra: str) -> dict:
        (src / "hosts").write_text(f"step {step}\n")
        return json.loads(cli("backup", "files", str(src), *extra, "--json", env=here).stdout)

    cli("init")
    a1 = backup(1, "--kind", "full")
    (src / "hosts").write_text("the other machine's file\n")
    b1 = json.loads(other_host(repo_env, "backup", "files", str(src), "--json").stdout)
    # The other host has nothing of its own to compare with: it reads everything.
    assert b1["parent"] is None and b1["kind"] == "full"
    assert b1["host"] == OTHER and b1["host_id"] == "web-2"
    a2 = backup(2)
    assert a2["host"] == socket.gethostname() and a2["parent"] == a1["id"]
    diff = backup(3, "--kind", "differential")
    assert diff["parent"] == a1["id"]  # this host's latest full, not the other host's newer one
    a3 = backup(4)
    assert a3["parent"] == diff["id"]

    plan = json.loads(cli("forget", "--keep-last", "2", "--json").stdout)
    assert sorted(plan["removed"]) == sorted([a1["id"], a2["id"]])
    groups = {g["group"]["host"]: g for g in plan["groups"]}
    assert set(groups) == {socket.gethostname(), OTHER}
    assert all(set(g["group"]) == {"host", "source_name"} for g in plan["groups"])
    assert [s["id"] for s in groups[OTHER]["snapshots"] if s["keep"]] == [b1["id"]]

    listed = json.loads(cli("snapshots", "--host", OTHER, "--json").stdout)
    assert [s["id"] for s in listed] == [b1["id"]]
    out = json.loads(cli("restore", "latest", "--host", OTHER, "--target",
                         str(tmp_path / "r"), "--json").stdout)
    assert out["snapshot"] == b1["id"]
    restored = tmp_path / "r" / str(src).lstrip("/") / "hosts"
    assert restored.read_text() == "the other machine's file\n"
    b2 = json.loads(other_host(repo_env, "backup", "files", str(src), "--json").stdout)
    assert b2["parent"] == b1["id"] and b2["kind"] == "incremental"
    latest = json.loads(cli("restore", "latest", "--target", str(tmp_path / "any"),
                            "--json").stdout)
    assert latest["snapshot"] == b2["id"]  # without --host: the latest of any host


def test_host_id_option(cli, repo_env, tmp_path: Path) -> None:
    """``--host-id`` names this host in its snapshots; a malformed one is bad input."""
    src = tmp_path / "etc"
    src.mkdir()
    (src / "hosts").write_text("127.0.0.1 localhost\n")
    cli("init")
    made = json.loads(cli("--host-id", "web-9", "backup", "files", str(src), "--json").stdout)
    listed = json.loads(cli("snapshots", "--json").stdout)
    assert [s["host_id"] for s in listed if s["id"] == made["id"]] == ["web-9"]
    bad = cli("--host-id", "web/9", "snapshots", check=False)
    assert bad.returncode == 2 and bad.stderr.startswith("error: a host id")



def test_a_host_whose_id_is_not_kept_still_forms_one_group(cli, repo_env, tmp_path: Path
                                                           ) -> None:
    """A container without a volume gets a new host id each run: retention still groups its
    runs by host name, so keep-last 1 keeps one (not one per run, for ever)."""
    src = tmp_path / "etc"
    src.mkdir()
    cli("init")
    made = []
    for run in range(3):
        (src / "hosts").write_text(f"run {run}\n")
        made.append(json.loads(cli("backup", "files", str(src), "--name", "web", "--json",
                                   env={"STRONGROOM_STATE_DIR": str(tmp_path / f"s{run}")}
                                   ).stdout)["id"])
    cli("forget", "--keep-last", "1")
    assert [s["id"] for s in json.loads(cli("snapshots", "--json").stdout)] == [made[-1]]
