"""Activity: does traffic use this channel, over 1, 7 and 30 days?

Per window: forwards per day (both directions) saturating at 2/day for half marks, and
volume per day as a share of capacity saturating at 2 %/day for half marks, averaged.
Windows weigh 0.2 (1 d), 0.5 (7 d), 0.3 (30 d). Where the backend reports failed forwards,
the score is scaled by 0.5 + 0.5 x the 7-day success ratio.
"""

from __future__ import annotations

from ..metrics import ChannelMetrics, NetworkContext
from ..profiles import Profile
from .base import HeuristicResult, result, saturating

NAME = "activity"
WINDOW_WEIGHTS = {1: 0.2, 7: 0.5, 30: 0.3}


def _window_score(ch: ChannelMetrics, days: int) -> float:
    w = ch.window(days)
    per_day = (w.forwards_out + w.forwards_in) / days
    turnover = (w.volume_out_msat + w.volume_in_msat) / max(1, ch.capacity_msat) / days
    return 0.5 * saturating(per_day, 2.0) + 0.5 * saturating(turnover, 0.02)


def score(ch: ChannelMetrics, net: NetworkContext, profile: Profile) -> HeuristicResult:
    parts = {days: _window_score(ch, days) for days in WINDOW_WEIGHTS}
    value = sum(WINDOW_WEIGHTS[d] * parts[d] for d in parts)
    week = ch.window(7)
    attempts = week.forwards_out + week.failed_out
    success = week.forwards_out / attempts if attempts and week.failed_out else None
    if success is not None:
        value *= 0.5 + 0.5 * success
    return result(
        NAME,
        value,
        forwards_7d=week.forwards_out + week.forwards_in,
        forwards_30d=ch.window(30).forwards_out + ch.window(30).forwards_in,
        volume_out_7d_sat=week.volume_out_msat // 1000,
        success_ratio_7d=None if success is None else round(success, 3),
        score_1d=round(parts[1], 3),
        score_7d=round(parts[7], 3),
        score_30d=round(parts[30], 3),
    )
