"""Liquidity: can this channel forward outward right now, and is it big enough to matter?

balance = min(1, local_ratio / target_ratio): full marks at or above the target ratio, so
more local balance never lowers the score (idle excess is the activity heuristic's concern);
size = log scale between 100k and 10M sat. score = 0.75 balance + 0.25 size.
"""

from __future__ import annotations

from ..metrics import ChannelMetrics, NetworkContext
from ..profiles import Profile
from .base import HeuristicResult, clamp, log_scale, result

NAME = "liquidity"


def score(ch: ChannelMetrics, net: NetworkContext, profile: Profile) -> HeuristicResult:
    target = profile.target_ratio
    balance = clamp(ch.local_ratio / target) if target > 0 else 1.0
    size = log_scale(ch.capacity_sat, 100_000, 10_000_000)
    return result(
        NAME,
        0.75 * balance + 0.25 * size,
        local_ratio=round(ch.local_ratio, 4),
        target_ratio=target,
        balance_part=round(balance, 3),
        size_part=round(size, 3),
    )
