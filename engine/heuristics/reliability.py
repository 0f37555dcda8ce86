"""Reliability: is the channel usable when a payment needs it?

uptime^2 (share of the last 7 days' snapshots in which the channel was active; squared so
95 % scores 0.90 and 80 % scores 0.64) x exp(-disconnects_7d / 7). Without history the
current state decides: 0.7 when active, 0.2 when not.
"""

from __future__ import annotations

import math

from ..metrics import ChannelMetrics, NetworkContext
from ..profiles import Profile
from .base import HeuristicResult, result

NAME = "reliability"


def score(ch: ChannelMetrics, net: NetworkContext, profile: Profile) -> HeuristicResult:
    if ch.uptime_ratio is None:
        return result(NAME, 0.7 if ch.active else 0.2, active=ch.active, note="no history yet")
    disconnects = ch.disconnects_7d or 0
    value = ch.uptime_ratio**2 * math.exp(-disconnects / 7)
    return result(
        NAME,
        value,
        uptime_7d=round(ch.uptime_ratio, 4),
        disconnects_7d=disconnects,
        active=ch.active,
    )
