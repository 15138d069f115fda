"""Files benchmark: strongroom vs restic vs borg on the same tree, in the same run.

Not a test. Steps per tool: full backup, unchanged re-run, 5% of files changed, restore,
repository size. Usage:
    python3 bench/bench_files.py [--data DIR] [--work bench/work] [--tools strongroom,restic,borg]
By default the data is a copy of this Python's site-packages (about 1 GB, tens of thousands of
files). Prints a table and writes bench/work/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

PASSWORD = "bench-password"


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run(cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)
    return time.perf_counter() - start


def change_5_percent(data: Path) -> int:
    files = sorted(p for p in data.rglob("*") if p.is_file() and not p.is_symlink())
    changed = files[::20]
    for p in changed:
        with open(p, "ab") as fh:
            fh.write(b"\n# changed by the benchmark\n")
    return len(changed)


def tool_steps(tool: str, repo: Path, data: Path, restore_to: Path) -> dict[str, list[str]]:
    if tool == "strongroom":
        return {"init": ["strongroom", "init", "--repo", str(repo)],
                "backup": ["strongroom", "backup", "files", str(data), "--repo", str(repo)],
                "restore": ["strongroom", "restore", "latest", "--repo", str(repo), "--target",
                            str(restore_to)]}
    if tool == "restic":
        return {"init": ["restic", "init", "-r", str(repo)],
                "backup": ["restic", "backup", "-r", str(repo), str(data)],
                "restore": ["restic", "restore", "latest", "-r", str(repo), "--target",
                            str(restore_to)]}
    if tool == "borg":
        stamp = "{now:%Y%m%d%H%M%S%f}"
        return {"init": ["borg", "init", "-e", "repokey", str(repo)],
                "backup": ["borg", "create", "--compression", "zstd,3", f"{repo}::{stamp}",
                           str(data)],
                "restore": ["sh", "-c", f"cd {restore_to} && borg extract "
                            f"{repo}::$(borg list --last 1 --short {repo})"]}
    raise SystemExit(f"unknown tool {tool}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=Path(sysconfig.get_paths()["purelib"]))
    ap.add_argument("--work", type=Path, default=Path(__file__).parent / "work")
    ap.add_argument("--tools", default="strongroom,restic,borg")
    args = ap.parse_args()
    work = args.work.absolute()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    tools = args.tools.split(",")
    env = dict(os.environ, STRONGROOM_PASSWORD=PASSWORD, RESTIC_PASSWORD=PASSWORD,
               BORG_PASSPHRASE=PASSWORD, BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK="yes",
               BORG_RELOCATED_REPO_ACCESS_IS_OK="yes", RESTIC_CACHE_DIR=str(work / "cache"),
               BORG_BASE_DIR=str(work / "borg-base"))
    env.pop("STRONGROOM_ARGON2_MEMORY_KIB", None)

    # One data copy per tool, so each sees the same change made the same way.
    copies = {}
    for tool in tools:
        copies[tool] = work / f"data-{tool}" / "tree"
        shutil.copytree(args.data, copies[tool], symlinks=True)
    files = sum(1 for p in copies[tools[0]].rglob("*") if p.is_file())
    size = du(copies[tools[0]])
    print(f"data: {files} files, {size / 1e6:.0f} MB from {args.data}", flush=True)

    results: dict[str, dict[str, float]] = {}
    for tool in tools:
        repo = work / f"repo-{tool}"
        dest = work / f"restore-{tool}"
        dest.mkdir()
        steps = tool_steps(tool, repo, copies[tool], dest)
        r: dict[str, float] = {}
        run(steps["init"], env)
        r["full_s"] = run(steps["backup"], env)
        r["unchanged_s"] = run(steps["backup"], env)
        change_5_percent(copies[tool])
        r["changed5_s"] = run(steps["backup"], env)
        r["restore_s"] = run(steps["restore"], env)
        r["repo_mb"] = du(repo) / 1e6
        results[tool] = r
        print(tool, json.dumps({k: round(v, 2) for k, v in r.items()}), flush=True)
        shutil.rmtree(dest, ignore_errors=True)

    base = results.get("strongroom")
    print(f"\n{'step':<14}" + "".join(f"{t:>14}" for t in tools)
          + "".join(f"{'sr/' + t:>14}" for t in tools if t != "strongroom"))
    for key in ("full_s", "unchanged_s", "changed5_s", "restore_s", "repo_mb"):
        line = f"{key:<14}" + "".join(f"{results[t][key]:>14.2f}" for t in tools)
        if base:
            line += "".join(f"{base[key] / results[t][key]:>14.2f}" for t in tools
                            if t != "strongroom")
        print(line)
    (work / "results.json").write_text(json.dumps({"files": files, "bytes": size,
                                                   "results": results}, indent=2))
    shutil.rmtree(work / "data-strongroom", ignore_errors=True)
    for tool in tools:
        shutil.rmtree(work / f"data-{tool}", ignore_errors=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
