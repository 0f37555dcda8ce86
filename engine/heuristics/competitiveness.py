"""Competitiveness: is our fee attractive next to the other ways into the same peer?

q = our fee rate / reference, where the reference is what other nodes charge into the peer
(capacity-weighted median, as CLBOSS surveys it) and, separately, the network median.
Each part scores min(1, 2 / (1 + q^2)): full at or below the reference, 0.4 at twice it.
score = 0.7 against competitors + 0.3 against the network (network only when the peer's
competitors are unknown).
"""

from __future__ import annotations

from ..metrics import ChannelMetrics, NetworkContext
from ..profiles import Profile
from .base import HeuristicResult, clamp, result

NAME = "competitiveness"


def _part(our: float, reference: float) -> float:
    q = our / max(1.0, reference)
    return clamp(2.0 / (1.0 + q * q))


def score(ch: ChannelMetrics, net: NetworkContext, profile: Profile) -> HeuristicResult:
    if ch.fee_ppm is None:
        return result(NAME, 0.5, note="our policy is unknown")
    peer = net.peer(ch.peer_id)
    competitor = peer.competitor_fee_ppm if peer else None
    vs_network = _part(ch.fee_ppm, net.median_fee_ppm)
    if competitor is None:
        value, vs_competitor = vs_network, None
    else:
        vs_competitor = _part(ch.fee_ppm, competitor)
        value = 0.7 * vs_competitor + 0.3 * vs_network
    return result(
        NAME,
        value,
        fee_ppm=ch.fee_ppm,
        competitor_fee_ppm=competitor,
        network_median_ppm=net.median_fee_ppm,
        vs_competitor=None if vs_competitor is None else round(vs_competitor, 3),
        vs_network=round(vs_network, 3),
    )
