"""A backup that stops half-way until told to go on: ``python -m tests.concurrency.held_backup
URL``. It deduplicates against the files of ``reused_files()`` (stored by an earlier, forgotten
snapshot), stores new data in packs no index names yet, prints ``stored``, waits for a line on
stdin, then stores the rest and commits. It prints ``saved <id>``, or ``error: <message>`` and
exits with the error's code, as the CLI would. The S3 endpoint comes from AWS_ENDPOINT_URL."""

from __future__ import annotations

import io
import sys

from strongroom.errors import StrongroomError
from tests.tiers.helpers import open_repo, random_files


def reused_files() -> dict[str, bytes]:
    return random_files(7001, count=4, size=200_000)


def new_files() -> dict[str, bytes]:
    return random_files(7002, count=6, size=300_000)


def all_files() -> dict[str, bytes]:
    """The victim snapshot's files, as a restore gives them back."""
    return {**{f"reused/{k}": v for k, v in reused_files().items()},
            **{f"new/{k}": v for k, v in new_files().items()}}


def main() -> None:
    repo = open_repo(sys.argv[1])
    try:
        with repo.writer(source_name="victim", source_kind="files", kind="full") as w:
            files = all_files()
            names = sorted(files, key=lambda n: (not n.startswith("reused/"), n))
            half = len(names) // 2
            for path in names[:half]:
                w.add_stream(path, io.BytesIO(files[path]))
            w._packer.flush()  # every pack so far in storage, none indexed
            print("stored", flush=True)
            sys.stdin.readline()
            for path in names[half:]:
                w.add_stream(path, io.BytesIO(files[path]))
            snap = w.commit()
    except StrongroomError as exc:
        print(f"error: {exc}", flush=True)
        sys.exit(exc.exit_code)
    print(f"saved {snap.id}", flush=True)


if __name__ == "__main__":
    main()
