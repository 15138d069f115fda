"""Time that does not trust one host's wall clock.

Ages of objects other hosts wrote (locks, prune marks, snapshots) are measured with the
storage's clock (:meth:`Backend.clock`, :meth:`Backend.list_times`), never by comparing this
host's ``time.time()`` with another host's. A process measures its own elapsed time with
``CLOCK_BOOTTIME``, which keeps counting while the machine is suspended (``CLOCK_MONOTONIC``
does not). Where the local clock and the storage's disagree by more than :data:`TOLERANCE`
seconds, opening warns and destructive operations refuse (:class:`ClockSkew`, exit 19).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

from strongroom.errors import ClockSkew
from strongroom.storage.base import Backend

log = logging.getLogger("strongroom")

# Seconds this host's clock may differ from the storage's before destructive work refuses.
TOLERANCE = float(os.environ.get("STRONGROOM_CLOCK_TOLERANCE", 120))


def beyond_tolerance(seconds: float) -> bool:
    """Whether two clocks ``seconds`` apart disagree: beyond the tolerance, with one second
    more for whole-second dates (S3's ``Date``). The one rule for refusing a skewed clock and
    for flagging a snapshot dated in the future."""
    return abs(seconds) > TOLERANCE + 1


def boottime() -> float:
    """Seconds since boot, suspended time included: a holder's own lease clock."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


@dataclass(frozen=True)
class ClockReading:
    """The storage's time against this host's, read once."""

    storage: float  # the storage's clock when read
    offset: float   # storage minus this host (seconds; positive: this host is behind)

    @classmethod
    def read(cls, backend: Backend) -> ClockReading:
        before = time.time()
        storage = backend.clock()
        after = time.time()
        return cls(storage, storage - (before + after) / 2)

    @property
    def skewed(self) -> bool:
        return beyond_tolerance(self.offset)

    def describe(self) -> str:
        way = "behind" if self.offset > 0 else "ahead of"
        return (f"this host's clock is {abs(self.offset):.0f} s {way} the storage's "
                f"(tolerance {TOLERANCE:g} s, STRONGROOM_CLOCK_TOLERANCE)")

    def require_agreement(self, operation: str) -> None:
        """ClockSkew if the clocks disagree beyond the tolerance: ``operation`` deletes data
        and must not decide ages with a wrong clock."""
        if self.skewed:
            raise ClockSkew(f"refusing to {operation}: {self.describe()}; fix the clock "
                            "(NTP) and retry")


def warn_if_skewed(reading: ClockReading) -> None:
    if reading.skewed:
        log.warning("%s; forget, prune, key retire and re-encrypt refuse until it is fixed",
                    reading.describe())
