"""Retry delays: exponential with jitter, so a flaky node is not hammered and several
Daznode instances do not retry in step."""

from __future__ import annotations

import random

BASE_SECONDS = 5.0
JITTER = 0.2  # +/- 20 %


def backoff_seconds(
    failures: int, interval: float, cap: float, rng: random.Random | None = None
) -> float:
    """Delay before the next attempt after `failures` consecutive failures.

    No failure: the normal interval. Then 5 s, 10 s, 20 s, ... but never longer than the
    normal interval (a failing node is retried at least as often as a healthy one is
    polled) nor than `cap`; never shorter than the base.
    """
    if failures <= 0:
        return float(interval)
    delay = min(cap, BASE_SECONDS * 2 ** (failures - 1), max(interval, BASE_SECONDS))
    return delay * (rng or random).uniform(1 - JITTER, 1 + JITTER)
