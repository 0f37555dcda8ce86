"""Channel heuristics, one per module, all with the signature of `base.Heuristic`."""

from __future__ import annotations

from . import (
    activity,
    centrality,
    competitiveness,
    liquidity,
    network_position,
    peer_quality,
    reliability,
    stability,
)
from .base import Heuristic, HeuristicResult

HEURISTICS: dict[str, Heuristic] = {
    m.NAME: m.score
    for m in (
        liquidity,
        activity,
        competitiveness,
        centrality,
        reliability,
        stability,
        peer_quality,
        network_position,
    )
}

__all__ = ["HEURISTICS", "Heuristic", "HeuristicResult"]
