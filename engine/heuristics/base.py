"""The one shape every heuristic has: `score(channel, network, profile) -> HeuristicResult`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..metrics import ChannelMetrics, NetworkContext
    from ..profiles import Profile

Fact = float | int | str | bool | None


@dataclass(frozen=True, slots=True)
class HeuristicResult:
    name: str
    score: float  # 0 (bad) .. 100 (good)
    facts: Mapping[str, Fact] = field(default_factory=dict)


class Heuristic(Protocol):
    def __call__(
        self, ch: ChannelMetrics, net: NetworkContext, profile: Profile
    ) -> HeuristicResult: ...


def clamp(x: float, lo: float = 0.0, hi: float = 1.0) -> float:
    return lo if x < lo else hi if x > hi else x


def result(name: str, unit_score: float, **facts: Fact) -> HeuristicResult:
    """Scale a 0..1 score to 0..100 with one decimal, the form every heuristic returns."""
    return HeuristicResult(name, round(100 * clamp(unit_score), 1), facts)


def saturating(x: float, half_at: float) -> float:
    """0 at 0, 0.5 at `half_at`, approaching 1: diminishing returns of more of a good thing."""
    return 0.0 if x <= 0 else 1 - math.exp(-x * math.log(2) / half_at)


def log_scale(x: float, lo: float, hi: float) -> float:
    """0 at or below `lo`, 1 at or above `hi`, linear in log10 between."""
    if x <= lo:
        return 0.0
    return clamp((math.log10(x) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)))
