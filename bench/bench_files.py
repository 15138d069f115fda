"""Files benchmark: strongroom vs restic 0.18.1, restic 0.14 (Debian) and borg, same tree.

Not a test. Per round and tool, on a fresh repository: full backup, unchanged re-run, 5% of
files changed and backed up again, restore into tmpfs (``/dev/shm``: the CPU path) and onto
disk (with a ``sync`` inside the timing: write-back counts), repository size. Rounds alternate
the tools (a busy machine slows all of them alike) and the table shows medians and ratios
against restic 0.18.1. Usage:
    python3 bench/bench_files.py [--data DIR] [--work bench/work] [--runs 3]
        [--tools strongroom,restic18,restic14,borg] [--restic18 PATH]
        [--old-tree DIR --tools strongroom,strongroom-old,restic18]
restic 0.18.1 is ``--restic18``, else ``$RESTIC18``, else ``restic18`` on PATH, else
/work/tools/bin/restic (build it with ``go install github.com/restic/restic/cmd/restic@v0.18.1``).
The data defaults to a copy of this Python's site-packages. Writes ``work/results.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

PASSWORD = "bench-password"
STEPS = ("full_s", "unchanged_s", "changed5_s", "restore_shm_s", "restore_disk_s", "repo_mb")
BASE = "restic18"
SHORT = {"strongroom": "sr", "strongroom-old": "old", "restic14": "r14"}
CLI = 'import sys; from strongroom.cli import main; sys.argv[0] = "strongroom"; sys.exit(main())'



def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run(cmd: list[str], env: dict[str, str], sync: bool = False) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if done.returncode:
        raise SystemExit(f"error: {' '.join(cmd)} exited {done.returncode}: "
                         f"{done.stderr.decode(errors='replace')[-500:]}")
    if sync:
        os.sync()
    return time.perf_counter() - start


def change_5_percent(data: Path) -> int:
    files = sorted(p for p in data.rglob("*") if p.is_file() and not p.is_symlink())
    changed = files[::20]
    for p in changed:
        with open(p, "ab") as fh:
            fh.write(b"\n# changed by the benchmark\n")
    return len(changed)


def find_restic18(option: str | None) -> str:
    for cand in (option, os.environ.get("RESTIC18"), shutil.which("restic18"),
                 "/work/tools/bin/restic"):
        if cand and os.access(cand, os.X_OK):
            return cand
    raise SystemExit("error: restic 0.18.1 not found (--restic18, $RESTIC18 or restic18 on "
                     "PATH; build it with go install github.com/restic/restic/cmd/restic@v0.18.1)")


def tool_steps(tool: str, repo: Path, data: Path, restic18: str) -> dict[str, list[str]]:
    """Commands per step; ``{target}`` in the restore command is the restore directory."""
    if tool in ("strongroom", "strongroom-old"):
        # strongroom-old: the CLI of the tree given by --old-tree (its PYTHONPATH, see main;
        # -P: the working directory, maybe a newer checkout, does not come first on sys.path)
        exe = ["strongroom"] if tool == "strongroom" else [sys.executable, "-P", "-c", CLI]
        return {"init": [*exe, "init", "--repo", str(repo)],
                "backup": [*exe, "backup", "files", str(data), "--repo", str(repo)],
                "restore": [*exe, "restore", "latest", "--repo", str(repo), "--target",
                            "{target}"]}
    if tool in ("restic18", "restic14"):
        exe = restic18 if tool == "restic18" else "restic"
        return {"init": [exe, "init", "-r", str(repo)],
                "backup": [exe, "backup", "-q", "-r", str(repo), str(data)],
                "restore": [exe, "restore", "latest", "-q", "-r", str(repo), "--target",
                            "{target}"]}
    if tool == "borg":
        stamp = "{now:%Y%m%d%H%M%S%f}"
        return {"init": ["borg", "init", "-e", "repokey", str(repo)],
                "backup": ["borg", "create", "--compression", "zstd,3", f"{repo}::{stamp}",
                           str(data)],
                "restore": ["sh", "-c", f"cd {{target}} && borg extract "
                            f"{repo}::$(borg list --last 1 --short {repo})"]}
    raise SystemExit(f"error: unknown tool {tool}")


def one_round(tool: str, work: Path, data: Path, env: dict[str, str], restic18: str
              ) -> dict[str, float]:
    repo = work / f"repo-{tool}"
    shutil.rmtree(repo, ignore_errors=True)
    steps = tool_steps(tool, repo, data, restic18)
    r: dict[str, float] = {}
    run(steps["init"], env)
    os.sync()
    r["full_s"] = run(steps["backup"], env)
    r["unchanged_s"] = run(steps["backup"], env)
    change_5_percent(data)
    r["changed5_s"] = run(steps["backup"], env)
    for key, parent in (("restore_shm_s", Path("/dev/shm")), ("restore_disk_s", work)):
        dest = Path(tempfile.mkdtemp(prefix=f"restore-{tool}-", dir=parent))
        os.sync()
        cmd = [a.replace("{target}", str(dest)) for a in steps["restore"]]
        r[key] = run(cmd, env, sync=True)
        shutil.rmtree(dest, ignore_errors=True)
    r["repo_mb"] = du(repo) / 1e6
    shutil.rmtree(repo, ignore_errors=True)
    return r


def table(medians: dict[str, dict[str, float]], tools: list[str]) -> str:
    others = [t for t in tools if t != BASE] if BASE in medians else []
    lines = [f"{'step':<15}" + "".join(f"{t:>12}" for t in tools)
             + "".join(f"{SHORT.get(t, t) + '/r18':>13}" for t in others)]
    for key in STEPS:
        line = f"{key:<15}" + "".join(f"{medians[t][key]:>12.2f}" for t in tools)
        line += "".join(f"{medians[t][key] / medians[BASE][key]:>13.2f}" for t in others)
        lines.append(line)
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path(sysconfig.get_paths()["purelib"]))
    ap.add_argument("--work", type=Path, default=Path(__file__).parent / "work")
    ap.add_argument("--tools", default="strongroom,restic18,restic14,borg")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--restic18", help="path of restic 0.18.1")
    ap.add_argument("--old-tree", type=Path,
                    help="a checkout of an earlier strongroom, timed as tool strongroom-old "
                         "(e.g. git worktree add /tmp/sr-old <commit>)")
    args = ap.parse_args()
    work = args.work.absolute()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    tools = args.tools.split(",")
    restic18 = find_restic18(args.restic18) if "restic18" in tools else ""
    env = dict(os.environ, STRONGROOM_PASSWORD=PASSWORD, RESTIC_PASSWORD=PASSWORD,
               BORG_PASSPHRASE=PASSWORD, BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK="yes",
               BORG_RELOCATED_REPO_ACCESS_IS_OK="yes", BORG_BASE_DIR=str(work / "borg-base"))
    env.pop("STRONGROOM_ARGON2_MEMORY_KIB", None)
    # An installed package has its bytecode compiled (pip does it): never time compiling it.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    if "strongroom" in tools:
        subprocess.run(["strongroom", "--help"], env=env, stdout=subprocess.DEVNULL, check=True)

    # One data copy per tool, so each sees the same change made the same way each round.
    copies = {}
    for tool in tools:
        copies[tool] = work / f"data-{tool}" / "tree"
        shutil.copytree(args.data, copies[tool], symlinks=True)
    files = sum(1 for p in copies[tools[0]].rglob("*") if p.is_file())
    size = du(copies[tools[0]])
    load = os.getloadavg()[0]
    print(f"data: {files} files, {size / 1e6:.0f} MB from {args.data}; {os.cpu_count()} cores, "
          f"load {load:.1f}", flush=True)

    rounds: dict[str, list[dict[str, float]]] = {t: [] for t in tools}
    try:
        for i in range(args.runs):
            order = tools if i % 2 == 0 else tools[::-1]  # alternate who goes first
            for tool in order:
                tenv = dict(env, RESTIC_CACHE_DIR=str(work / f"cache-{tool}"))
                if tool == "strongroom-old":
                    if not args.old_tree:
                        raise SystemExit("error: strongroom-old needs --old-tree DIR")
                    tenv["PYTHONPATH"] = str(args.old_tree.absolute())
                r = one_round(tool, work, copies[tool], tenv, restic18)
                rounds[tool].append(r)
                print(f"round {i + 1} {tool}", json.dumps({k: round(v, 2) for k, v in r.items()}),
                      f"load {os.getloadavg()[0]:.1f}", flush=True)
    finally:
        for tool in tools:
            shutil.rmtree(work / f"data-{tool}", ignore_errors=True)
    medians = {t: {k: statistics.median(r[k] for r in rounds[t]) for k in STEPS} for t in tools}
    print(f"\nmedians of {args.runs} alternating rounds (seconds, MB); ratios vs restic 0.18.1")
    print(table(medians, tools))
    (work / "results.json").write_text(json.dumps(
        {"files": files, "bytes": size, "load_start": load, "load_end": os.getloadavg()[0],
         "rounds": rounds, "medians": medians}, indent=2))
    sys.exit(0)


if __name__ == "__main__":
    main()
