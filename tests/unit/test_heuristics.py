"""The eight channel heuristics against hand-computed values and random channels.

Every expected score below is worked out by hand from the formula in the heuristic's module
docstring; the arithmetic is in the comment next to it (scores are 0..100 with one decimal).
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.heuristics import HEURISTICS
from engine.heuristics import activity as h_activity
from engine.heuristics import centrality as h_centrality
from engine.heuristics import competitiveness as h_competitiveness
from engine.heuristics import liquidity as h_liquidity
from engine.heuristics import network_position as h_network_position
from engine.heuristics import peer_quality as h_peer_quality
from engine.heuristics import reliability as h_reliability
from engine.heuristics import stability as h_stability
from engine.metrics import ChannelMetrics, FlowWindow, NetworkContext, PeerInfo
from engine.node_source import RoutingPolicy
from engine.profiles import BUILTIN, Profile

PEER = "02" + "ab" * 32
P = Profile()


def policy(fee_ppm: int, **kw) -> RoutingPolicy:
    return RoutingPolicy(
        base_fee_msat=kw.pop("base_fee_msat", 1000),
        fee_rate_ppm=fee_ppm,
        cltv_delta=80,
        htlc_min_msat=1000,
        htlc_max_msat=kw.pop("htlc_max_msat", 990_000_000),
        **kw,
    )


def chan(
    capacity_sat: int = 1_000_000,
    local_sat: int = 500_000,
    remote_sat: int | None = None,
    *,
    fee_ppm: int | None = 100,
    windows: list[FlowWindow] = (),
    **kw,
) -> ChannelMetrics:
    remote = capacity_sat - local_sat if remote_sat is None else remote_sat
    return ChannelMetrics(
        channel_id="800000x1x0",
        peer_id=kw.pop("peer_id", PEER),
        peer_alias="peer",
        capacity_sat=capacity_sat,
        local_msat=local_sat * 1000,
        remote_msat=remote * 1000,
        active=kw.pop("active", True),
        age_days=kw.pop("age_days", 100.0),
        local_policy=None if fee_ppm is None else policy(fee_ppm),
        remote_policy=kw.pop("remote_policy", policy(50)),
        windows={w.days: w for w in windows},
        **kw,
    )


def net(peer: PeerInfo | None = None, **kw) -> NetworkContext:
    return NetworkContext(graph_available=True, peers={} if peer is None else {PEER: peer}, **kw)


def peer_info(channels=100, capacity_sat=100_000_000, competitor=None, betweenness=None):
    return PeerInfo(channels, capacity_sat, competitor, 10, betweenness)


# -- liquidity -------------------------------------------------------------------------------


def test_liquidity_half_target_mid_size():
    # ratio 0.25 / target 0.5 = 0.5 balance; size log10(1e6): (6-5)/(7-5) = 0.5
    # 0.75*0.5 + 0.25*0.5 = 0.5 -> 50.0
    r = h_liquidity.score(chan(1_000_000, 250_000), net(), P)
    assert r.score == pytest.approx(50.0, abs=0.1)
    assert r.facts["local_ratio"] == 0.25
    assert r.facts["balance_part"] == 0.5
    assert r.facts["size_part"] == 0.5


def test_liquidity_full_marks_above_target_and_large():
    # ratio 0.8 >= 0.5 -> balance 1; 10M sat -> size 1; 0.75 + 0.25 = 1 -> 100.0
    r = h_liquidity.score(chan(10_000_000, 8_000_000), net(), P)
    assert r.score == pytest.approx(100.0, abs=0.1)


def test_liquidity_small_depleted_channel():
    # 50k sat < 100k -> size 0; ratio 0.1/0.5 = 0.2 -> 0.75*0.2 = 0.15 -> 15.0
    r = h_liquidity.score(chan(50_000, 5_000), net(), P)
    assert r.score == pytest.approx(15.0, abs=0.1)
    assert r.facts["size_part"] == 0.0


def test_liquidity_uses_the_profile_target():
    # target 0.25: ratio 0.25 -> balance 1; 3.16M sat: log10 = 6.5 -> (6.5-5)/2 = 0.75
    # 0.75*1 + 0.25*0.75 = 0.9375 -> 93.75 (93.8 after rounding)
    p = replace(P, target_ratio=0.25)
    r = h_liquidity.score(chan(3_162_278, 790_569), net(), p)
    assert r.score == pytest.approx(93.75, abs=0.1)
    assert r.facts["target_ratio"] == 0.25


def test_liquidity_empty_channel_has_no_balance_part():
    # local = remote = 0 -> ratio 0 -> balance 0; size 0.5 at 1M sat -> 0.125 -> 12.5
    r = h_liquidity.score(chan(1_000_000, 0, 0), net(), P)
    assert r.score == pytest.approx(12.5, abs=0.1)


# -- activity --------------------------------------------------------------------------------


def test_activity_no_traffic_scores_zero():
    r = h_activity.score(chan(), net(), P)
    assert r.score == 0.0
    assert r.facts["forwards_7d"] == 0
    assert r.facts["success_ratio_7d"] is None


def test_activity_one_window_at_half_marks():
    # 7 d only: 14 forwards / 7 = 2/day -> 0.5; 140M msat / 1e9 msat / 7 = 2 %/day -> 0.5
    # window score 0.5 x weight 0.5 = 0.25 -> 25.0 (1 d and 30 d empty)
    w7 = FlowWindow(7, forwards_out=14, volume_out_msat=140_000_000)
    r = h_activity.score(chan(windows=[w7]), net(), P)
    assert r.score == pytest.approx(25.0, abs=0.1)
    assert r.facts == {
        "forwards_7d": 14,
        "forwards_30d": 0,
        "volume_out_7d_sat": 140_000,
        "success_ratio_7d": None,
        "score_1d": 0.0,
        "score_7d": 0.5,
        "score_30d": 0.0,
    }


def test_activity_all_windows_half_marks_then_failures_scale_it():
    # every window: 2 forwards/day (in+out) and 2 % of capacity/day -> 0.5 each
    # 0.2*0.5 + 0.5*0.5 + 0.3*0.5 = 0.5 -> 50.0
    ws = [
        FlowWindow(1, forwards_out=1, forwards_in=1, volume_out_msat=20_000_000),
        FlowWindow(7, forwards_out=7, forwards_in=7, volume_out_msat=140_000_000),
        FlowWindow(30, forwards_out=30, forwards_in=30, volume_out_msat=600_000_000),
    ]
    assert h_activity.score(chan(windows=ws), net(), P).score == pytest.approx(50.0, abs=0.1)
    # 7 failed next to 7 settled out: success 7/14 = 0.5 -> x (0.5 + 0.25) = 0.375 -> 37.5
    ws[1] = replace(ws[1], failed_out=7)
    r = h_activity.score(chan(windows=ws), net(), P)
    assert r.score == pytest.approx(37.5, abs=0.1)
    assert r.facts["success_ratio_7d"] == 0.5


def test_activity_saturates_with_diminishing_returns():
    # 7 d: 28 forwards in -> 4/day: 1 - 2^-2 = 0.75; no volume -> window 0.375
    # x 0.5 -> 0.1875 -> 18.75
    r = h_activity.score(chan(windows=[FlowWindow(7, forwards_in=28)]), net(), P)
    assert r.score == pytest.approx(18.75, abs=0.1)


def test_activity_only_failures_scores_zero():
    # no settled forwards, 5 failed: success 0 -> the (zero) score x 0.5 stays 0
    r = h_activity.score(chan(windows=[FlowWindow(7, failed_out=5)]), net(), P)
    assert r.score == 0.0
    assert r.facts["success_ratio_7d"] == 0.0


# -- competitiveness -------------------------------------------------------------------------


def test_competitiveness_at_reference_is_full_marks():
    # q = 100/100 = 1 -> 2/(1+1) = 1 for both parts -> 100.0
    r = h_competitiveness.score(chan(fee_ppm=100), net(peer_info(competitor=100)), P)
    assert r.score == pytest.approx(100.0, abs=0.1)
    assert r.facts["vs_competitor"] == 1.0


def test_competitiveness_twice_the_competitors():
    # vs competitors q = 200/100 = 2 -> 2/5 = 0.4; vs network q = 200/200 = 1 -> 1
    # 0.7*0.4 + 0.3*1 = 0.58 -> 58.0
    r = h_competitiveness.score(
        chan(fee_ppm=200), net(peer_info(competitor=100), median_fee_ppm=200), P
    )
    assert r.score == pytest.approx(58.0, abs=0.1)
    assert r.facts["vs_competitor"] == 0.4
    assert r.facts["vs_network"] == 1.0


def test_competitiveness_without_competitors_uses_the_network_only():
    # q = 300/100 = 3 -> 2/10 = 0.2 -> 20.0; same whether the peer is absent or unsurveyed
    for n in (net(None, median_fee_ppm=100), net(peer_info(competitor=None))):
        r = h_competitiveness.score(chan(fee_ppm=300), n, P)
        assert r.score == pytest.approx(20.0, abs=0.1)
        assert r.facts["competitor_fee_ppm"] is None
        assert r.facts["vs_competitor"] is None
        assert r.facts["vs_network"] == 0.2


def test_competitiveness_zero_fee_and_tiny_reference():
    # fee 0 -> q 0 -> 2/1 clamped to 1 -> 100.0
    assert h_competitiveness.score(chan(fee_ppm=0), net(), P).score == 100.0
    # reference 0 is treated as 1: q = 3/1 = 3 -> 0.2 (competitor) and network 100: q 0.03
    # -> 2/1.0009 clamped 1; 0.7*0.2 + 0.3*1 = 0.44 -> 44.0
    r = h_competitiveness.score(chan(fee_ppm=3), net(peer_info(competitor=0)), P)
    assert r.score == pytest.approx(44.0, abs=0.1)


def test_competitiveness_unknown_policy_is_neutral():
    r = h_competitiveness.score(chan(fee_ppm=None), net(), P)
    assert r.score == 50.0
    assert "unknown" in r.facts["note"]


# -- centrality ------------------------------------------------------------------------------


def test_centrality_reference_betweenness_is_full_marks():
    # sqrt(0.05 / 0.05) = 1 -> 100.0
    r = h_centrality.score(chan(), net(peer_info(betweenness=0.05)), P)
    assert r.score == pytest.approx(100.0, abs=0.1)
    assert r.facts["method"] == "betweenness"


def test_centrality_mixes_peer_and_our_betweenness():
    # peer sqrt(0.0125/0.05) = 0.5; ours sqrt(0.0045/0.05) = 0.3
    # 0.8*0.5 + 0.2*0.3 = 0.46 -> 46.0
    r = h_centrality.score(chan(), net(peer_info(betweenness=0.0125), our_betweenness=0.0045), P)
    assert r.score == pytest.approx(46.0, abs=0.1)
    assert r.facts["our_betweenness"] == 0.0045


def test_centrality_caps_at_one():
    # sqrt(0.2/0.05) = 2 -> capped at 1 -> 100.0
    assert h_centrality.score(chan(), net(peer_info(betweenness=0.2)), P).score == 100.0


def test_centrality_local_degree_fallback_without_betweenness():
    # log10(100) / log10(1000) = 2/3 -> 66.7
    r = h_centrality.score(chan(), net(peer_info(channels=100)), P)
    assert r.score == pytest.approx(66.7, abs=0.1)
    assert "local-degree fallback" in r.facts["method"]
    assert r.facts["peer_channels"] == 100


def test_centrality_peer_not_in_graph():
    r = h_centrality.score(chan(), net(None), P)
    assert r.score == 0.0
    assert "local-degree fallback" in r.facts["method"]
    assert "not in the graph" in r.facts["note"]


# -- reliability -----------------------------------------------------------------------------


def test_reliability_uptime_squared():
    # 0.95^2 = 0.9025, no disconnects -> 90.25
    r = h_reliability.score(chan(uptime_ratio=0.95, disconnects_7d=0), net(), P)
    assert r.score == pytest.approx(90.25, abs=0.1)
    assert r.facts["uptime_7d"] == 0.95


def test_reliability_disconnects_decay():
    # 1.0^2 x exp(-7/7) = 0.3679 -> 36.8
    r = h_reliability.score(chan(uptime_ratio=1.0, disconnects_7d=7), net(), P)
    assert r.score == pytest.approx(36.8, abs=0.1)
    assert r.facts["disconnects_7d"] == 7


def test_reliability_unknown_disconnects_count_as_none():
    # 0.8^2 = 0.64 x exp(0) -> 64.0
    r = h_reliability.score(chan(uptime_ratio=0.8, disconnects_7d=None), net(), P)
    assert r.score == pytest.approx(64.0, abs=0.1)


def test_reliability_without_history_uses_the_active_flag():
    up = h_reliability.score(chan(active=True), net(), P)
    down = h_reliability.score(chan(active=False), net(), P)
    assert (up.score, down.score) == (70.0, 20.0)
    assert up.facts == {"active": True, "note": "no history yet"}
    assert down.facts["active"] is False


# -- stability -------------------------------------------------------------------------------


def test_stability_half_aged_steady():
    # age 45/90 = 0.5 -> 0.6*0.5 = 0.3; no changes -> 0.4*1 -> 0.7 -> 70.0
    r = h_stability.score(chan(age_days=45), net(), P)
    assert r.score == pytest.approx(70.0, abs=0.1)


def test_stability_old_with_six_changes():
    # age capped 1 -> 0.6; 0.4 x exp(-6/6) = 0.14715 -> 0.74715 -> 74.7
    r = h_stability.score(chan(age_days=200, policy_changes_30d=6), net(), P)
    assert r.score == pytest.approx(74.7, abs=0.1)
    assert r.facts == {"age_days": 200.0, "policy_changes_30d": 6}


def test_stability_new_and_restless():
    # age 0 -> 0; 0.4 x exp(-12/6) = 0.4 x 0.135335 = 0.054134 -> 5.4
    r = h_stability.score(chan(age_days=0, policy_changes_30d=12), net(), P)
    assert r.score == pytest.approx(5.4, abs=0.1)


# -- peer quality ----------------------------------------------------------------------------


def test_peer_quality_without_graph_is_capped_at_half_reachability():
    # no peer info: 0.5 x reach (1 when active, 0 when not, the uptime when known)
    assert h_peer_quality.score(chan(active=True), net(None), P).score == 50.0
    assert h_peer_quality.score(chan(active=False), net(None), P).score == 0.0
    # 0.5 x 0.6 = 0.3 -> 30.0
    r = h_peer_quality.score(chan(uptime_ratio=0.6), net(None), P)
    assert r.score == pytest.approx(30.0, abs=0.1)
    assert r.facts["note"] == "peer not in graph"


def test_peer_quality_top_peer():
    # 500 channels -> 1; 1,000M sat -> 1; uptime 0.5 -> 0.4 + 0.4 + 0.1 = 0.9 -> 90.0
    p = peer_info(channels=500, capacity_sat=1_000_000_000)
    r = h_peer_quality.score(chan(uptime_ratio=0.5), net(p), P)
    assert r.score == pytest.approx(90.0, abs=0.1)


def test_peer_quality_mid_peer():
    # channels: log10(10)/log10(500) = 1/2.69897 = 0.37051
    # capacity: (log10(1e7) - 6)/(9 - 6) = 1/3 = 0.33333; active -> reach 1
    # 0.4*0.37051 + 0.4*0.33333 + 0.2*1 = 0.14820 + 0.13333 + 0.2 = 0.48154 -> 48.2
    r = h_peer_quality.score(chan(), net(peer_info(channels=10, capacity_sat=10_000_000)), P)
    assert r.score == pytest.approx(48.2, abs=0.1)
    assert r.facts["reachability"] == 1.0


# -- network position ------------------------------------------------------------------------


def test_network_position_peer_not_in_graph():
    r = h_network_position.score(chan(), net(None), P)
    assert r.score == 0.0


def test_network_position_median_peer_is_edge():
    # 2 / 2 = 1x -> log scale 0 -> 0.0
    r = h_network_position.score(chan(), net(peer_info(channels=2), median_channels=2), P)
    assert r.score == 0.0
    assert r.facts["position"] == "edge"


def test_network_position_hub():
    # 400 / 2 = 200x -> 1 -> 100.0
    r = h_network_position.score(chan(), net(peer_info(channels=400), median_channels=2), P)
    assert r.score == 100.0
    assert r.facts["position"] == "hub"


def test_network_position_well_connected():
    # 20 / 2 = 10x -> log10(10)/log10(200) = 1/2.30103 = 0.43459 -> 43.5
    r = h_network_position.score(chan(), net(peer_info(channels=20), median_channels=2), P)
    assert r.score == pytest.approx(43.5, abs=0.1)
    assert r.facts["position"] == "well connected"
    assert r.facts["relative_degree"] == 10.0


def test_network_position_zero_median_degree_counts_as_one():
    # 5 / max(1, 0) = 5x -> log10(5)/log10(200) = 0.69897/2.30103 = 0.30376 -> 30.4
    r = h_network_position.score(chan(), net(peer_info(channels=5), median_channels=0), P)
    assert r.score == pytest.approx(30.4, abs=0.1)
    assert r.facts["position"] == "well connected"


# -- properties over random channels ---------------------------------------------------------

fees = st.integers(0, 10_000)


@st.composite
def policies(draw) -> RoutingPolicy | None:
    if draw(st.booleans()):
        return None
    inbound = draw(st.booleans())
    return RoutingPolicy(
        base_fee_msat=draw(st.integers(0, 5_000)),
        fee_rate_ppm=draw(fees),
        cltv_delta=draw(st.integers(18, 2016)),
        htlc_min_msat=draw(st.integers(0, 1_000_000)),
        htlc_max_msat=draw(st.integers(1_000_000, 10**11)),
        inbound_base_fee_msat=draw(st.integers(-1_000, 0)) if inbound else None,
        inbound_fee_rate_ppm=draw(st.integers(-1_000, 0)) if inbound else None,
        disabled=draw(st.booleans()),
    )


@st.composite
def windows(draw, capacity_msat: int) -> dict[int, FlowWindow]:
    """Nested windows: the 7-day counts include the 1-day ones, the 30-day the 7-day ones."""
    out: dict[int, FlowWindow] = {}
    prev = FlowWindow(0)
    for days in (1, 7, 30):
        f_out = draw(st.integers(0, 60))
        f_in = draw(st.integers(0, 60))
        v_out = f_out * draw(st.integers(1_000, max(1_000, capacity_msat // 2)))
        v_in = f_in * draw(st.integers(1_000, max(1_000, capacity_msat // 2)))
        w = FlowWindow(
            days,
            forwards_out=prev.forwards_out + f_out,
            forwards_in=prev.forwards_in + f_in,
            volume_out_msat=prev.volume_out_msat + v_out,
            volume_in_msat=prev.volume_in_msat + v_in,
            fees_msat=prev.fees_msat + v_out * draw(st.integers(0, 5_000)) // 1_000_000,
            failed_out=prev.failed_out + draw(st.integers(0, 20)),
        )
        if draw(st.integers(0, 9)):  # now and then a window is missing entirely
            out[days] = w
        prev = w
    return out


@st.composite
def channels(draw, peer_id: str = PEER) -> ChannelMetrics:
    capacity = draw(st.integers(20_000, 100_000_000))
    total = draw(st.integers(0, capacity * 1000))
    local = draw(st.integers(0, total))
    return ChannelMetrics(
        channel_id=f"{draw(st.integers(500_000, 900_000))}x1x0",
        peer_id=peer_id,
        peer_alias="peer",
        capacity_sat=capacity,
        local_msat=local,
        remote_msat=total - local,
        active=draw(st.booleans()),
        age_days=draw(st.floats(0, 3_000)),
        local_policy=draw(policies()),
        remote_policy=draw(policies()),
        windows=draw(windows(capacity * 1000)),
        uptime_ratio=draw(st.none() | st.floats(0, 1)),
        disconnects_7d=draw(st.none() | st.integers(0, 100)),
        policy_changes_30d=draw(st.integers(0, 60)),
        balance_trend_msat_per_day=draw(st.floats(-(capacity * 1000.0), capacity * 1000.0)),
    )


@st.composite
def networks(draw, peer_id: str = PEER) -> NetworkContext:
    peers = {}
    if draw(st.booleans()):
        peers[peer_id] = PeerInfo(
            channels=draw(st.integers(1, 5_000)),
            capacity_sat=draw(st.integers(20_000, 50_000_000_000)),
            competitor_fee_ppm=draw(st.none() | fees),
            competitor_count=draw(st.integers(0, 5_000)),
            betweenness=draw(st.none() | st.floats(0, 0.3)),
        )
    return NetworkContext(
        graph_available=bool(peers) or draw(st.booleans()),
        median_fee_ppm=draw(st.integers(0, 2_000)),
        median_channels=draw(st.integers(0, 50)),
        our_channels=draw(st.integers(0, 500)),
        our_betweenness=draw(st.none() | st.floats(0, 0.3)),
        peers=peers,
        onchain_feerate_sat_vb=draw(st.integers(1, 500)),
    )


profiles = st.sampled_from(list(BUILTIN.values()))
SETTINGS = settings(max_examples=80, deadline=None)


@SETTINGS
@given(channels(), networks(), profiles)
def test_every_score_is_within_0_and_100(ch, n, p):
    for name, heuristic in HEURISTICS.items():
        r = heuristic(ch, n, p)
        assert r.name == name
        assert 0.0 <= r.score <= 100.0
        assert not math.isnan(r.score)


@SETTINGS
@given(channels(), networks(), profiles)
def test_heuristics_are_deterministic(ch, n, p):
    for heuristic in HEURISTICS.values():
        assert heuristic(ch, n, p) == heuristic(ch, n, p)


@SETTINGS
@given(channels(), networks(), profiles, st.data())
def test_more_local_balance_never_lowers_liquidity(ch, n, p, data):
    moved = data.draw(st.integers(0, ch.remote_msat))
    richer = replace(ch, local_msat=ch.local_msat + moved, remote_msat=ch.remote_msat - moved)
    assert h_liquidity.score(richer, n, p).score >= h_liquidity.score(ch, n, p).score


def test_registry_has_the_eight_heuristics():
    assert sorted(HEURISTICS) == sorted(
        [
            "liquidity",
            "activity",
            "competitiveness",
            "centrality",
            "reliability",
            "stability",
            "peer_quality",
            "network_position",
        ]
    )
