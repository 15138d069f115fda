"""Neo4j restores through the CLI when things go wrong: one `error:` line, the documented exit
code, no password anywhere, and a half-written database always said so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from strongroom.repository import Repository
from strongroom.sources.neo4j.graphfile import FORMAT, GRAPH_FILE
from tests.neo4j.helpers import run
from tests.support.neo4j_server import Neo4jServer, free_port

CLI = [sys.executable, "-c", "from strongroom.cli import main; main()"]


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(CLI + list(args), env=env, capture_output=True, text=True,
                          timeout=180)


def one_error_line(out: subprocess.CompletedProcess[str], code: int, text: str,
                   secret: str) -> None:
    assert out.returncode == code, out.stderr
    assert out.stderr.startswith("error: ") and text in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert secret not in out.stdout + out.stderr


def test_cli_restore_errors(neo4j_db: Neo4jServer, repo: Repository, tmp_path: Path) -> None:
    env = {**os.environ, "STRONGROOM_REPOSITORY": str(tmp_path / "repo"),
           "STRONGROOM_PASSWORD": "test-pass", "BAD_NEO4J_PW": "not-the-password"}
    good = ["--restore-option", f"password_env={neo4j_db.password_env}"]
    target = neo4j_db.uri + "/neo4j"
    # A graph file that is well formed but whose schema the data breaks (as an inconsistent
    # online export can be): the load succeeds, the constraint after it fails.
    body = "".join(json.dumps(row) + "\n" for row in [
        {"format": FORMAT, "version": 1, "database": "neo4j", "server": "test"},
        ["s", "CREATE CONSTRAINT `p_id` FOR (n:`P`) REQUIRE (n.`id`) IS UNIQUE"],
        ["n", 0, ["P"], {"id": 1}], ["n", 1, ["P"], {"id": 1}], ["end", 2, 0]])
    with repo.writer(source_name="dup", source_kind="neo4j") as w:
        w.add_bytes(GRAPH_FILE, body.encode())
        w.set_meta({"format": FORMAT, "version": 1, "checksum": "0" * 64, "nodes": 2})
        w.commit()
    restore = ["restore", "latest", "--name", "dup", "--target", target]

    one_error_line(cli(env, *restore, "--restore-option", "password_env=BAD_NEO4J_PW"), 14,
                   "refused the credentials", "not-the-password")
    one_error_line(cli(env, *restore[:-1], f"bolt://127.0.0.1:{free_port()}/neo4j", *good), 14,
                   "Connection refused", neo4j_db.password)  # the reason, not a dangling ':'
    one_error_line(cli(env, *restore[:-1], f"bolt://neo4j:{neo4j_db.password}@127.0.0.1:"
                       f"{neo4j_db.port}/neo4j"), 2, "password", neo4j_db.password)
    assert run(neo4j_db, "MATCH (n) RETURN count(n) AS c")[0]["c"] == 0  # nothing touched

    out = cli(env, *restore, *good)
    one_error_line(out, 14, "is left partially restored (2 nodes, 0 relationships written): "
                   "restore again with --replace", neo4j_db.password)
    assert run(neo4j_db, "MATCH (n:P) RETURN count(n) AS c")[0]["c"] == 2  # as it says

    run(neo4j_db, "CREATE (:Real {v: 1})-[:R]->(:Real {v: 2})")  # now a real, damaged backup
    out = cli(env, "backup", "neo4j", "--uri", neo4j_db.uri, "--password-env",
              neo4j_db.password_env, "--name", "real")
    assert out.returncode == 0, out.stderr
    for pack in (tmp_path / "repo" / "data").rglob("*"):
        if pack.is_file():
            data = bytearray(pack.read_bytes())
            data[len(data) // 2] ^= 1
            pack.write_bytes(bytes(data))
    out = cli(env, "restore", "latest", "--name", "real", "--target", target, "--replace", *good)
    one_error_line(out, 13, "damaged", neo4j_db.password)
    assert run(neo4j_db, "MATCH (n) RETURN count(n) AS c")[0]["c"] == 4  # not cleared
