"""Peak memory of a files backup of many small files (the target: under 1 GB for a million).

Not a test. Generates DIRS x FILES files of about 100 bytes under ``--work`` (on disk: a
million files need about 4 GB of it), backs them up into a fresh local repository twice (full,
then unchanged) and prints each run's peak RSS (``ru_maxrss`` of the child) and time, then
removes everything. Usage:
    python3 bench/bench_memory.py [--dirs 1000] [--files 1000] [--work /var/tmp/sr-memory]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import time
from pathlib import Path


def generate(root: Path, dirs: int, files: int) -> None:
    for d in range(dirs):
        sub = root / f"d{d:04d}"
        sub.mkdir(parents=True)
        for f in range(files):
            (sub / f"f{f:04d}.txt").write_text(f"file {d} {f} " + "x" * (80 + (d * 7 + f) % 40))


def peak_run(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one command run as a child of a fresh helper process."""
    probe = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
             "stdout=subprocess.DEVNULL); print(resource.getrusage("
             "resource.RUSAGE_CHILDREN).ru_maxrss)")
    start = time.perf_counter()
    out = subprocess.run(["python3", "-c", probe, *cmd], env=env, check=True,
                         capture_output=True, text=True).stdout
    return time.perf_counter() - start, int(out.split()[-1]) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dirs", type=int, default=1000)
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--work", type=Path, default=Path("/var/tmp/sr-memory"))
    args = ap.parse_args()
    work = args.work.absolute()
    shutil.rmtree(work, ignore_errors=True)
    env = dict(os.environ, STRONGROOM_PASSWORD="bench-password",
               PYTHONPYCACHEPREFIX=str(work / "pycache"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    try:
        generate(work / "tree", args.dirs, args.files)
        repo = str(work / "repo")
        subprocess.run(["strongroom", "init", "--repo", repo], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        backup = ["strongroom", "backup", "files", str(work / "tree"), "--repo", repo]
        for label in ("full", "unchanged"):
            secs, mb = peak_run(backup, env)
            print(f"{args.dirs * args.files} files, {label} backup: {secs:.1f} s, "
                  f"peak RSS {mb:.0f} MB", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
