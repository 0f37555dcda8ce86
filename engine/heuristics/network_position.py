"""Network position: is the peer a hub or at the network's edge?

relative degree = peer channels / the network's median node degree; score = log scale of it
between 1x and 200x. Labels: hub (>= 50x), well connected (>= 5x), edge otherwise.
"""

from __future__ import annotations

from ..metrics import ChannelMetrics, NetworkContext
from ..profiles import Profile
from .base import HeuristicResult, log_scale, result

NAME = "network_position"


def score(ch: ChannelMetrics, net: NetworkContext, profile: Profile) -> HeuristicResult:
    peer = net.peer(ch.peer_id)
    if peer is None:
        return result(NAME, 0.0, note="peer not in graph")
    relative = peer.channels / max(1, net.median_channels)
    label = "hub" if relative >= 50 else "well connected" if relative >= 5 else "edge"
    return result(
        NAME,
        log_scale(relative, 1, 200),
        peer_channels=peer.channels,
        network_median_channels=net.median_channels,
        relative_degree=round(relative, 2),
        position=label,
    )
