"""Replication lag in seconds: how long ago the server was at the position now received.

The receiver's status gives byte positions (server, received, archived). A byte lag says little
to an RPO; :class:`LagClock` keeps recent (time, server position) samples and answers with the
age of the newest sample the received position has reached: the data the archive would lose if
the server vanished now was written in the last ``lag_s`` seconds."""

from __future__ import annotations

import time
from collections import deque

from strongroom.sources.postgres import walnames as wn


class LagClock:
    """Feed it each status check; it answers the lag in seconds (0 when caught up)."""

    def __init__(self, keep: int = 4096, clock: object = time.monotonic) -> None:
        self.samples: deque[tuple[float, int]] = deque(maxlen=keep)
        self.clock = clock
        self.caught_up_at: float | None = None

    def observe(self, server_lsn: str | None, received_lsn: str | None) -> float | None:
        """Lag in seconds after this sample; None while the server or the stream is unknown."""
        now = self.clock()  # type: ignore[operator]
        if not server_lsn or not received_lsn:
            return None if self.caught_up_at is None else round(now - self.caught_up_at, 3)
        server, received = wn.parse_lsn(server_lsn), wn.parse_lsn(received_lsn)
        if not self.samples or self.samples[-1][1] != server:
            self.samples.append((now, server))
        if received >= server:
            self.caught_up_at = now
            return 0.0
        reached = [t for t, pos in self.samples if pos <= received]
        since = max(reached) if reached else (self.caught_up_at or self.samples[0][0])
        # the position first went past what was received right after ``since``
        return round(now - since, 3)
