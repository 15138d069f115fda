"""Run prune in a child process that can be killed mid-way (``kill -9`` tests).

Usage: python -m tests.tiers.prune_child URL KILL_AT DELAY_S — SIGKILL itself just before the
KILL_AT-th pack deletion (-1: never), sleeping DELAY_S before each deletion.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from datetime import timedelta

from strongroom.repository.prune import prune
from tests.tiers.helpers import open_repo


def main() -> None:
    url, kill_at, delay = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    deletions = 0

    def on_delete(_pid: str) -> None:
        nonlocal deletions
        deletions += 1
        if deletions == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(delay)

    report = prune(open_repo(url), grace=timedelta(0), repack_threshold=0.2,
                   on_delete=on_delete)
    print(json.dumps(report.as_dict()))


if __name__ == "__main__":
    main()
