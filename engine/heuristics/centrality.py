"""Centrality: how much of the network's traffic can pass through this peer (and us)?

With graph analytics: sqrt(betweenness / 0.05), capped at 1 (the best-connected mainnet
nodes are near 0.15-0.23), 0.8 for the peer and 0.2 for our own node when known.
Without (no graph synced yet): a local-degree fallback, log scale of the peer's channel
count between 1 and 1000, and the facts say so.
"""

from __future__ import annotations

import math

from ..metrics import ChannelMetrics, NetworkContext
from ..profiles import Profile
from .base import HeuristicResult, clamp, log_scale, result

NAME = "centrality"
REFERENCE_BETWEENNESS = 0.05


def _from_betweenness(b: float) -> float:
    return clamp(math.sqrt(max(0.0, b) / REFERENCE_BETWEENNESS))


def score(ch: ChannelMetrics, net: NetworkContext, profile: Profile) -> HeuristicResult:
    peer = net.peer(ch.peer_id)
    if peer is not None and peer.betweenness is not None:
        value = _from_betweenness(peer.betweenness)
        if net.our_betweenness is not None:
            value = 0.8 * value + 0.2 * _from_betweenness(net.our_betweenness)
        return result(
            NAME,
            value,
            method="betweenness",
            peer_betweenness=peer.betweenness,
            our_betweenness=net.our_betweenness,
        )
    if peer is None:
        return result(NAME, 0.0, method="local-degree fallback", note="peer not in the graph")
    return result(
        NAME,
        log_scale(peer.channels, 1, 1000),
        method="local-degree fallback (no betweenness computed yet)",
        peer_channels=peer.channels,
    )
