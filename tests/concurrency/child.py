"""A reader or writer to kill -9 mid-way: ``python -m tests.concurrency.child MODE URL``.

MODE ``backup``: back up new data in a loop (each run holds a shared lock);
``restore``: restore every snapshot in a loop; ``prune``: forget churn and prune (grace 0) in
a loop. Prints ``ready`` once it has started working. The S3 endpoint comes from
AWS_ENDPOINT_URL.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from itertools import count

from strongroom.policy.retention import RetentionPolicy
from strongroom.repository.forget import forget, plan_for
from strongroom.repository.prune import prune
from tests.tiers.helpers import backup, open_repo, random_files, read_all


def main() -> None:
    mode, url = sys.argv[1], sys.argv[2]
    print("ready", flush=True)
    for i in count():
        repo = open_repo(url)
        if mode == "backup":
            backup(repo, random_files(10_000 + i, count=8, size=200_000), source="churn")
        elif mode == "restore":
            for snap in repo.list_snapshots():
                read_all(repo, snap)
        else:
            forget(repo, plan_for(repo, RetentionPolicy(keep_last=1), source_name="churn"))
            prune(repo, grace=timedelta(0), repack_threshold=0.1)


if __name__ == "__main__":
    main()
