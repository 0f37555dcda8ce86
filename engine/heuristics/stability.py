"""Age and stability: an established channel with a steady policy is worth more.

age = min(1, age_days / 90); steadiness = exp(-policy_changes_30d / 6) (six changes a month
score 0.37: every change costs gossip and resets what senders learned).
score = 0.6 age + 0.4 steadiness.
"""

from __future__ import annotations

import math

from ..metrics import ChannelMetrics, NetworkContext
from ..profiles import Profile
from .base import HeuristicResult, clamp, result

NAME = "stability"


def score(ch: ChannelMetrics, net: NetworkContext, profile: Profile) -> HeuristicResult:
    age = clamp(ch.age_days / 90)
    steadiness = math.exp(-ch.policy_changes_30d / 6)
    return result(
        NAME,
        0.6 * age + 0.4 * steadiness,
        age_days=round(ch.age_days, 1),
        policy_changes_30d=ch.policy_changes_30d,
    )
