"""Copy in a child process with slow uploads, to be killed mid-way (``kill -9`` test).

Usage: python -m tests.tiers.copy_child SRC_URL DST_URL DST_PASSWORD DELAY_S
"""

from __future__ import annotations

import sys
import time

from strongroom.repository.copy import copy_snapshots
from tests.tiers.helpers import open_repo


def main() -> None:
    src_url, dst_url, dst_password, delay = sys.argv[1:5]
    dst = open_repo(dst_url, dst_password)
    real_put = dst.backend.put

    def slow_put(key: str, data: bytes) -> None:
        if key.startswith("data/"):
            time.sleep(float(delay))
        real_put(key, data)

    dst.backend.put = slow_put  # type: ignore[method-assign]
    copy_snapshots(open_repo(src_url), dst)
    print("done")


if __name__ == "__main__":
    main()
