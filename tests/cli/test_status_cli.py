"""``status`` opens repositories like every other command: -r/--repo, STRONGROOM_REPOSITORY,
STRONGROOM_PASSWORD(_FILE), --password-file, -o; a login failure is exit 11 and a bad option
exit 2, not a broken 3-2-1 rule (exit 4)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import PASSWORD, one_line_error


def _backed_up(cli, tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("alpha\n")
    cli("init")
    cli("backup", "files", str(src), "--name", "app")
    return src


def test_status_from_the_environment_and_options(cli, repo_env, tmp_path: Path) -> None:
    _backed_up(cli, tmp_path)
    proc = cli("status", "--json", check=False)  # STRONGROOM_REPOSITORY + STRONGROOM_PASSWORD
    assert proc.returncode == 4, proc.stderr  # one repository: the 3-2-1 rule is broken
    doc = json.loads(proc.stdout)
    assert [r["url"] for r in doc["repositories"]] == [repo_env["STRONGROOM_REPOSITORY"]]
    assert doc["sources"][0]["source"] == "app" and doc["sources"][0]["copies"] == 2
    assert "3-2-1 rule broken" in proc.stderr

    pw = tmp_path / "pw"
    pw.write_text(PASSWORD + "\n")
    by_file = cli("status", "--json", "-r", repo_env["STRONGROOM_REPOSITORY"], check=False,
                  drop=("STRONGROOM_PASSWORD", "STRONGROOM_REPOSITORY"),
                  env={"STRONGROOM_PASSWORD_FILE": str(pw)})
    assert by_file.returncode == 4 and json.loads(by_file.stdout)["sources"] == doc["sources"]
    flag = cli("status", "--json", "--password-file", str(pw), check=False,
               drop=("STRONGROOM_PASSWORD",))
    assert flag.returncode == 4 and json.loads(flag.stdout)["sources"] == doc["sources"]


def test_status_with_r_and_R_together(cli, repo_env, tmp_path: Path) -> None:
    _backed_up(cli, tmp_path)
    second = tmp_path / "second"
    cli("init", "-r", str(second))
    cli("copy", "--to", str(second), env={"STRONGROOM_TO_PASSWORD": PASSWORD})
    primary = repo_env["STRONGROOM_REPOSITORY"]
    doc = json.loads(cli("status", "-r", primary, "-R", f"{second},site=elsewhere", "--json",
                         check=False).stdout)
    assert [r["url"] for r in doc["repositories"]] == [primary, str(second)]
    assert doc["sources"][0]["copies"] == 3
    only_R = json.loads(cli("status", "-R", str(second), "--json", check=False).stdout)
    assert [r["url"] for r in only_R["repositories"]] == [str(second)]  # env -r not added


def test_wrong_password_is_exit_11(cli, tmp_path: Path) -> None:
    _backed_up(cli, tmp_path)
    proc = cli("status", check=False, env={"STRONGROOM_PASSWORD": "not it"})
    one_line_error(proc, 11, "wrong password")
    assert "3-2-1" not in proc.stderr and "not it" not in proc.stderr


def test_bad_option_and_missing_repository(cli, tmp_path: Path) -> None:
    _backed_up(cli, tmp_path)
    one_line_error(cli("status", "-o", "colour=blue", check=False), 2, "unknown option 'colour'")
    one_line_error(cli("status", check=False, drop=("STRONGROOM_REPOSITORY",)), 2,
                   "no repository given")
