"""Peer quality: is the peer a solid routing node?

channels = log scale of its channel count (1 .. 500), capacity = log scale of its total
capacity (1M .. 1,000M sat), reachability = our uptime with it (or 1/0 from the current
state). score = 0.4 channels + 0.4 capacity + 0.2 reachability; without the graph only
reachability is known and the score is capped at 0.5.
"""

from __future__ import annotations

from ..metrics import ChannelMetrics, NetworkContext
from ..profiles import Profile
from .base import HeuristicResult, log_scale, result

NAME = "peer_quality"


def score(ch: ChannelMetrics, net: NetworkContext, profile: Profile) -> HeuristicResult:
    reach = ch.uptime_ratio if ch.uptime_ratio is not None else (1.0 if ch.active else 0.0)
    peer = net.peer(ch.peer_id)
    if peer is None:
        return result(NAME, 0.5 * reach, reachability=round(reach, 3), note="peer not in graph")
    channels = log_scale(peer.channels, 1, 500)
    capacity = log_scale(peer.capacity_sat, 1_000_000, 1_000_000_000)
    return result(
        NAME,
        0.4 * channels + 0.4 * capacity + 0.2 * reach,
        peer_channels=peer.channels,
        peer_capacity_sat=peer.capacity_sat,
        reachability=round(reach, 3),
    )
