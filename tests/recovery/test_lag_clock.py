"""Replication lag in seconds from byte positions: the age of the newest server position the
receiver has reached; zero when caught up; growing while the stream is down."""

from __future__ import annotations

from strongroom.sources.postgres.lag import LagClock


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_lag_is_the_age_of_the_position_received():
    clock = Clock()
    lag = LagClock(clock=clock)
    assert lag.observe("0/1000", "0/1000") == 0.0
    clock.now = 101.0
    assert lag.observe("0/2000", "0/1000") == 1.0  # server moved on at 101, nothing received
    clock.now = 103.0
    assert lag.observe("0/3000", "0/2000") == 2.0  # received what the server had at 101
    clock.now = 104.0
    assert lag.observe("0/3000", "0/3000") == 0.0
    clock.now = 110.0
    assert lag.observe(None, None) == 6.0  # server unreachable: time since caught up


def test_unknown_before_the_first_sample():
    assert LagClock().observe(None, "0/10") is None
