"""The baseline policies (engine/baselines.py) on hand-built channels.

Expected values are worked out by hand from each tool's rules (the comments show the
arithmetic). Channels are 1,000,000 sat unless stated; times are epoch seconds.
"""

from __future__ import annotations

import math
import random

import pytest

from engine.baselines import (
    BASELINES,
    ChargeLndProportional,
    ClbossStyle,
    LndgAutoFees,
    StaticMedianFees,
    balance_ratio,
    bin_ratio,
    num_balance_bins,
    price_multiplier,
    size_multiplier,
)
from engine.impact import ChannelFlow
from engine.metrics import ChannelMetrics, FlowWindow, NetworkContext, PeerInfo
from engine.node_source import RoutingPolicy
from engine.sim_policy import FeeSetting, RebalanceOrder

P1, P2, P3, P4, P5 = ("02" + c * 64 for c in "12345")
CAP = 1_000_000  # sat
T0 = 1_200_000  # a multiple of CLBOSS's 10-minute tick
HOUR, DAY = 3600, 86400


def policy(fee_ppm: int, base_fee_msat: int = 1000) -> RoutingPolicy:
    return RoutingPolicy(base_fee_msat, fee_ppm, 80, 1000, 10**12)


def chan(
    channel_id: str = "c1",
    *,
    peer_id: str = P1,
    local_sat: int = CAP // 2,
    capacity_sat: int = CAP,
    fee_ppm: int | None = 100,
    base_fee_msat: int = 1000,
    windows: tuple[FlowWindow, ...] = (),
    active: bool = True,
) -> ChannelMetrics:
    return ChannelMetrics(
        channel_id=channel_id,
        peer_id=peer_id,
        peer_alias=channel_id,
        capacity_sat=capacity_sat,
        local_msat=local_sat * 1000,
        remote_msat=(capacity_sat - local_sat) * 1000,
        active=active,
        age_days=100.0,
        local_policy=None if fee_ppm is None else policy(fee_ppm, base_fee_msat),
        remote_policy=policy(50),
        windows={w.days: w for w in windows},
    )


def network(median: int = 100, peers: dict[str, PeerInfo] | None = None) -> NetworkContext:
    return NetworkContext(graph_available=True, median_fee_ppm=median, peers=peers or {})


def lone_peer(competitor_fee_ppm: int | None) -> PeerInfo:
    """A peer with no channel but ours: BySize stays at 1."""
    return PeerInfo(
        channels=1, capacity_sat=CAP, competitor_fee_ppm=competitor_fee_ppm, competitor_count=0
    )


class FixedRng(random.Random):
    """Draws the given numbers (the last one repeats); shuffling keeps the deck as built."""

    def __init__(self, *draws: float) -> None:
        super().__init__(0)
        self.draws = list(draws)

    def random(self) -> float:
        return self.draws.pop(0) if len(self.draws) > 1 else self.draws[0]

    def shuffle(self, x) -> None:  # deck [c, c+1, c-1, c+2, c-2], drawn from the end
        pass


def test_the_registry_offers_the_four_baselines_as_fresh_instances():
    assert list(BASELINES) == ["static", "chargelnd", "lndg", "clboss"]
    names = [BASELINES[k]().name for k in BASELINES]
    assert names == [
        "Static (network median)",
        "charge-lnd (proportional)",
        "LNDg AutoFees",
        "CLBOSS-style",
    ]
    assert all(BASELINES[k]().interval_seconds == HOUR for k in BASELINES)


# -- static -----------------------------------------------------------------------------------


def test_static_sets_the_network_median_once_where_it_differs():
    p = StaticMedianFees()
    chans = [chan("a", fee_ppm=100), chan("b", fee_ppm=250), chan("c", fee_ppm=None)]
    first = p.decide(chans, network(median=100), T0)
    assert first.fees == {"b": FeeSetting(100), "c": FeeSetting(100)}
    assert first.rebalances == []
    # never again, even when the channels or the median move
    assert p.decide(chans, network(median=300), T0 + HOUR).fees == {}


# -- charge-lnd -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("local_sat", "ppm"),
    [
        (0, 300),  # 100 + (1 - 0) x 200
        (CAP // 2, 200),  # 100 + 0.5 x 200
        (CAP, 100),  # 100 + 0 x 200
        (CAP // 3, 233),  # 100 + (2/3) x 200 = 233.3, truncated
        (900_000, 120),  # 100 + 0.1 x 200
    ],
)
def test_chargelnd_proportional_between_its_example_bounds(local_sat: int, ppm: int):
    actions = ChargeLndProportional().decide([chan(local_sat=local_sat, fee_ppm=1)], network(), T0)
    assert actions.fees == {"c1": FeeSetting(ppm, 1000)}
    assert actions.rebalances == []


def test_chargelnd_skips_changes_under_min_fee_ppm_delta():
    p = ChargeLndProportional()
    # target 200: 195 -> 200 is 5 < 10, skipped; 190 -> 200 is 10, applied
    assert p.decide([chan(fee_ppm=195)], network(), T0).fees == {}
    assert p.decide([chan(fee_ppm=190)], network(), T0).fees == {"c1": FeeSetting(200, 1000)}
    assert p.decide([chan(fee_ppm=200)], network(), T0).fees == {}


def test_chargelnd_sends_the_rate_along_with_a_base_fee_change_even_under_the_delta():
    actions = ChargeLndProportional().decide([chan(fee_ppm=195, base_fee_msat=0)], network(), T0)
    assert actions.fees == {"c1": FeeSetting(200, 1000)}


def test_chargelnd_without_base_fee_keeps_it_and_skips_empty_channels():
    p = ChargeLndProportional(base_fee_msat=None)
    assert p.decide([chan(fee_ppm=195, base_fee_msat=0)], network(), T0).fees == {}
    assert p.decide([chan(fee_ppm=150)], network(), T0).fees == {"c1": FeeSetting(200, None)}
    empty = chan(local_sat=0, capacity_sat=0, fee_ppm=1)
    assert ChargeLndProportional().decide([empty], network(), T0).fees == {}


# -- LNDg -------------------------------------------------------------------------------------


def lndg_step(**kw) -> dict[str, FeeSetting]:
    """One LNDg pass over one channel (fee 100 unless given)."""
    kw.setdefault("fee_ppm", 100)
    return LndgAutoFees().decide([chan(**kw)], network(), T0).fees


def test_lndg_drained_with_failed_htlcs_and_no_inflow_raises_5m():
    day = FlowWindow(1, failed_out=26)
    # 10 % local <= 15: 26 > 25 failed, nothing in over a day -> +5 x 5 = +25
    assert lndg_step(local_sat=100_000, windows=(day,)) == {"c1": FeeSetting(125)}
    # 25 failures is not more than 25
    assert lndg_step(local_sat=100_000, windows=(FlowWindow(1, failed_out=25),)) == {}
    # 1,000 sat came in today: no raise
    inflow = FlowWindow(1, failed_out=26, volume_in_msat=1_000_000)
    assert lndg_step(local_sat=100_000, windows=(inflow,)) == {}
    # under one sat is whole sats 0 in LNDg's sums: still "no inflow"
    dust = FlowWindow(1, failed_out=26, volume_in_msat=999)
    assert lndg_step(local_sat=100_000, windows=(dust,)) == {"c1": FeeSetting(125)}


def test_lndg_low_liquidity_limit_is_inclusive_and_summed_over_the_peer():
    # two channels with the peer: 50k + 250k local of 2M = 15 % <= 15 -> drained rule
    failing = FlowWindow(1, failed_out=26)
    chans = [
        chan("a", local_sat=50_000, fee_ppm=100, windows=(failing,)),
        chan("b", local_sat=250_000, fee_ppm=200),
    ]
    fees = LndgAutoFees().decide(chans, network(), T0).fees
    assert fees == {"a": FeeSetting(125), "b": FeeSetting(225)}


def test_lndg_middle_without_flow_lowers_3m():
    assert lndg_step(local_sat=500_000) == {"c1": FeeSetting(85)}  # 100 - 15


@pytest.mark.parametrize(
    ("out_sat", "ppm"),
    [
        # net = out / 1M sat; adjustment 2 x 5 x (1 + net)
        (2_750_000, 140),  # +37.5 -> 137.5 / 5 = 27.5 -> 28 (half to even) -> 140
        (2_250_000, 130),  # +32.5 -> 132.5 / 5 = 26.5 -> 26 (half to even) -> 130
        (1_500_000, 125),  # +25 -> 125
        (1_000_000, None),  # net 1 is not above 1: no change
    ],
)
def test_lndg_middle_with_net_outflow_raises_2m_times_1_plus_net(out_sat: int, ppm: int | None):
    week = FlowWindow(7, volume_out_msat=out_sat * 1000)
    expected = {} if ppm is None else {"c1": FeeSetting(ppm)}
    assert lndg_step(local_sat=500_000, windows=(week,)) == expected


def test_lndg_full_without_flow_or_feeding_others_lowers_5m():
    # 95 % local >= 95, nothing moved in 7 days -> -25
    assert lndg_step(local_sat=950_000) == {"c1": FeeSetting(75)}
    # inflow (net < 0) whose forwards earned elsewhere more than 10x this channel's own
    feeding = FlowWindow(7, volume_in_msat=10**8, fees_msat=100, assisted_fees_msat=1001)
    assert lndg_step(local_sat=960_000, windows=(feeding,)) == {"c1": FeeSetting(75)}
    equal = FlowWindow(7, volume_in_msat=10**8, fees_msat=100, assisted_fees_msat=1000)
    assert lndg_step(local_sat=960_000, windows=(equal,)) == {}


def test_lndg_snaps_to_the_increment_and_clips_to_its_bounds():
    some_flow = FlowWindow(7, volume_out_msat=500_000_000)  # net 0.5: adjustment 0
    assert lndg_step(local_sat=500_000, fee_ppm=102, windows=(some_flow,)) == {
        "c1": FeeSetting(100)  # 102 / 5 = 20.4 -> 20 -> 100
    }
    assert lndg_step(local_sat=500_000, fee_ppm=100, windows=(some_flow,)) == {}
    # +25 over 2490 -> 2515, clipped to 2500; -15 under 10 -> -5, clipped to 0
    drained = FlowWindow(1, failed_out=30)
    assert lndg_step(local_sat=0, fee_ppm=2490, windows=(drained,)) == {"c1": FeeSetting(2500)}
    assert lndg_step(local_sat=500_000, fee_ppm=10) == {"c1": FeeSetting(0)}


def test_lndg_waits_more_than_24_hours_between_changes_of_a_channel():
    p = LndgAutoFees()
    assert p.decide([chan(fee_ppm=100)], network(), T0).fees == {"c1": FeeSetting(85)}
    assert p.decide([chan(fee_ppm=85)], network(), T0 + DAY).fees == {}  # not more than 24 h
    later = p.decide([chan(fee_ppm=85)], network(), T0 + DAY + HOUR).fees
    assert later == {"c1": FeeSetting(70)}
    # the cooldown is per channel: another channel is free meanwhile
    other = chan("c2", peer_id=P2, fee_ppm=100)
    assert p.decide([chan(fee_ppm=70), other], network(), T0 + DAY + 2 * HOUR).fees == {
        "c2": FeeSetting(85)
    }


def test_lndg_ignores_inactive_channels():
    assert lndg_step(local_sat=500_000, active=False) == {}


def test_lndg_invalid_thresholds_fall_back_to_5_and_95():
    p = LndgAutoFees(low_liq_limit=95, excess_limit=90)
    assert (p.low_liq_limit, p.excess_limit) == (5, 95)


# -- CLBOSS: modifiers ------------------------------------------------------------------------


def test_clboss_balance_curve_and_bins():
    assert balance_ratio(0.0) == pytest.approx(math.sqrt(50))  # 7.07
    assert balance_ratio(0.5) == 1.0
    assert balance_ratio(1.0) == pytest.approx(1 / math.sqrt(50))  # 0.14
    # 0.002 BTC bins: 1M sat -> 5; 1.3M -> 6.5 rounds half up to 7; clamped to 4..50
    assert num_balance_bins(CAP * 1000) == 5
    assert num_balance_bins(1_300_000_000) == 7
    assert num_balance_bins(100_000_000) == 4
    assert num_balance_bins(20 * 10**11) == 50
    # the centre of a bin: bin 0 of 5 is a 10 % share -> 50^0.4
    assert bin_ratio(0, 5) == pytest.approx(50**0.4)  # 4.78
    assert bin_ratio(2, 5) == 1.0


def test_clboss_balance_bins_move_with_hysteresis():
    p = ClbossStyle(rng=FixedRng(0.1))

    def mult(local_sat: int) -> float:
        return p.balance_multiplier(P1, chan(local_sat=local_sat))

    assert mult(500_000) == 1.0  # 2.5 of 5 bins -> bin 2, share 0.5
    assert mult(550_000) == 1.0  # 2.75: still bin 2, no draw
    # 3.25: up into bin 3 with probability 0.25 (the fraction into it); draw 0.1 -> moves
    assert mult(650_000) == pytest.approx(50**-0.2)  # bin 3, share 0.7
    assert p.bins[P1].bin == 3

    stays = ClbossStyle(rng=FixedRng(0.9))
    stays.balance_multiplier(P1, chan(local_sat=500_000))
    assert stays.balance_multiplier(P1, chan(local_sat=650_000)) == 1.0  # 0.9 >= 0.25: bin 2

    # down from bin 3 to 1.25: bin 1 with probability 1 - 0.25 = 0.75, else bin 2
    p.rng = FixedRng(0.5)
    assert mult(250_000) == pytest.approx(50**0.2)  # bin 1, share 0.3
    # up from bin 1 to 2.75: bin 2 with probability 0.75, else one lower (stays in 1)
    p.rng = FixedRng(0.8)
    assert mult(550_000) == pytest.approx(50**0.2) and p.bins[P1].bin == 1
    p.rng = FixedRng(0.7)
    assert mult(560_000) == 1.0 and p.bins[P1].bin == 2
    p.bins.clear()
    p.rng = FixedRng(0.8)
    mult(650_000)  # start in bin 3
    assert mult(250_000) == 1.0 and p.bins[P1].bin == 2  # 0.8 >= 0.75: one bin higher


def test_clboss_balance_starts_a_full_channel_in_the_top_bin():
    p = ClbossStyle(rng=FixedRng(0.0))
    assert p.balance_multiplier(P1, chan(local_sat=CAP)) == pytest.approx(bin_ratio(4, 5))
    assert p.bins[P1].bin == 4


def test_clboss_size_multiplier():
    assert size_multiplier(0, 10, 10) == pytest.approx(0.5)  # smallest of all
    assert size_multiplier(5, 5, 10) == pytest.approx(1.0)  # in the middle
    # biggest of 10: max(2, 16 - ln 10) = 13.70
    assert size_multiplier(10, 0, 10) == pytest.approx(16 - math.log(10))
    # pos 0.25 -> 0.5; x = 0.7071 x 0.5 + 0.5 = 0.8536; x^2 = 0.7286
    assert size_multiplier(2, 6, 8) == pytest.approx(0.72855, abs=1e-5)
    assert size_multiplier(10**7, 0, 10**7) == pytest.approx(2.0)  # 16 - ln 1e7 < 2
    assert size_multiplier(0, 0, 0) == 1.0


def test_clboss_size_from_the_competitors_average_channel_into_the_peer():
    p = ClbossStyle()
    # 11 channels and 11M sat into the peer, one of them ours: 10 competitors averaging
    # 1M sat. Share smaller than our 1M: 1 - e^-1 = 0.632 -> worse 6, better 4;
    # pos 0.6 -> 0.2; x = 0.8 + 0.2 x sqrt(13.697) = 1.5402; x^2 = 2.3722
    peer = PeerInfo(channels=11, capacity_sat=11 * CAP, competitor_fee_ppm=1, competitor_count=10)
    assert p.size_multiplier([chan()], peer) == pytest.approx(2.37222, abs=1e-5)
    # ours half the average: 1 - e^-0.5 = 0.393 -> worse 4, better 6;
    # pos 0.4 -> 0.8; x = 0.7071 x 0.2 + 0.8 = 0.9414; x^2 = 0.8863
    small = chan(capacity_sat=CAP // 2, local_sat=0)
    peer = PeerInfo(channels=11, capacity_sat=10_500_000, competitor_fee_ppm=1, competitor_count=10)
    assert p.size_multiplier([small], peer) == pytest.approx(0.88627, abs=1e-5)
    assert p.size_multiplier([chan()], lone_peer(100)) == 1.0  # no competitor
    assert p.size_multiplier([chan()], None) == 1.0


def test_clboss_price_multiplier():
    assert price_multiplier(0) == 1.0
    assert price_multiplier(2) == pytest.approx(1.44)
    assert price_multiplier(-2) == pytest.approx(0.64)


# -- CLBOSS: the fee it sets ------------------------------------------------------------------


def test_clboss_fee_is_the_competitor_median_times_the_modifiers_base_included():
    # balanced (x1), no competitor size (x1), first card drawn -2 (x0.64)
    p = ClbossStyle(rng=FixedRng(0.9))
    net = network(peers={P1: lone_peer(200)})
    actions = p.decide([chan(fee_ppm=1, base_fee_msat=1000)], net, T0)
    assert actions.fees == {"c1": FeeSetting(128, 640)}  # 200 x 0.64, 1000 x 0.64
    # the same setting again is not an update
    again = p.decide([chan(fee_ppm=128, base_fee_msat=640)], net, T0 + HOUR)
    assert again.fees == {}


def test_clboss_fee_falls_back_to_the_network_median_and_never_reaches_zero():
    p = ClbossStyle(rng=FixedRng(0.9))
    assert p.decide([chan(fee_ppm=1)], network(median=100), T0).fees == {"c1": FeeSetting(64, 640)}
    zero = ClbossStyle(rng=FixedRng(0.9))
    fees = zero.decide([chan(fee_ppm=5)], network(peers={P1: lone_peer(0)}), T0).fees
    assert fees == {"c1": FeeSetting(1, 640)}  # 0 x 0.64 = 0 -> 1


def test_clboss_sets_one_fee_for_every_channel_with_the_peer():
    p = ClbossStyle(rng=FixedRng(0.9))
    chans = [chan("a", fee_ppm=1), chan("b", fee_ppm=1, base_fee_msat=0, local_sat=0)]
    fees = p.decide(chans, network(peers={P1: lone_peer(200)}), T0).fees
    # the first channel's balance (bin 2 of 5) counts; each keeps its own base reference
    assert fees == {"a": FeeSetting(128, 640), "b": FeeSetting(128, 0)}


class CardFlows:
    """A flow lookup: the fees a card earns depend on when it was drawn."""

    def __init__(self, by_start: dict[int, int]) -> None:
        self.by_start = by_start

    def __call__(self, channel_id: str, start: int, end: int) -> ChannelFlow:
        return ChannelFlow(fees_msat=self.by_start.get(start, 0), seconds=end - start)


def play_hours(p: ClbossStyle, hours: int, active: bool = True) -> list[int]:
    """The fee rate set at each hourly call, competitor median 1,000 ppm, balanced channel."""
    net = network(peers={P1: lone_peer(1000)})
    rates = []
    for h in range(hours + 1):
        fees = p.decide([chan(fee_ppm=1, active=active)], net, T0 + h * HOUR).fees
        rates.append(fees["c1"].fee_ppm)
    return rates


CARD = 48  # hours a card stays in play


def test_clboss_price_cards_rotate_every_48_hours_and_the_best_earner_becomes_the_centre():
    p = ClbossStyle(rng=FixedRng(0.9))
    # cards in play order -2, +2, -1, +1, 0; the +1 card (the 4th) earns most
    earned = {T0 + k * CARD * HOUR: 1000 for k in range(5)}
    earned[T0 + 3 * CARD * HOUR] = 5000
    p.attach_flows(CardFlows(earned))
    rates = play_hours(p, 6 * CARD)
    assert rates[0] == rates[CARD - 1] == 640  # 0.8^2
    assert rates[CARD] == 1440  # 1.2^2
    assert rates[2 * CARD] == 800  # 0.8
    assert rates[3 * CARD] == 1200  # 1.2
    assert rates[4 * CARD] == 1000  # 1
    # new round around +1: deck [1, 2, 0, 3, -1], drawn from the end
    assert rates[5 * CARD] == 800  # -1
    assert rates[6 * CARD] == 1728  # +3: 1.2^3
    assert p.games[P1].centre == 1


def test_clboss_price_centre_stays_when_no_card_earned():
    p = ClbossStyle(rng=FixedRng(0.9))
    p.attach_flows(CardFlows({}))
    rates = play_hours(p, 5 * CARD)
    assert rates[5 * CARD] == 640  # a new round around 0 starts again at -2
    assert p.games[P1].centre == 0


def test_clboss_price_ties_go_to_the_first_card_played():
    p = ClbossStyle(rng=FixedRng(0.9))
    # +2 (2nd) and +1 (4th) earn the same best
    p.attach_flows(CardFlows({T0 + CARD * HOUR: 5000, T0 + 3 * CARD * HOUR: 5000}))
    rates = play_hours(p, 5 * CARD)
    assert p.games[P1].centre == 2
    assert rates[5 * CARD] == 1000  # around +2 the first card drawn is 0


def test_clboss_cards_age_only_while_the_peer_is_connected():
    p = ClbossStyle(rng=FixedRng(0.9))
    p.attach_flows(CardFlows({}))
    assert set(play_hours(p, 60, active=False)) == {640}  # still the first card


def test_clboss_card_earnings_without_a_flow_lookup_prorate_the_day():
    p = ClbossStyle(rng=FixedRng(0.9))
    net = network(peers={P1: lone_peer(1000)})
    day = FlowWindow(1, fees_msat=24_000)  # 1,000 msat an hour
    for h in range(CARD + 1):
        p.decide([chan(fee_ppm=1, windows=(day,))], net, T0 + h * HOUR)
    (card,) = p.games[P1].discarded
    assert (card.price, card.earnings_msat) == (-2, 48_000)


# -- CLBOSS: earnings rebalancer --------------------------------------------------------------


def earner(cid: str, peer: str, local_sat: int, *, out_fees: int = 0, in_fees: int = 0):
    month = FlowWindow(30, fees_msat=out_fees, assisted_fees_msat=in_fees)
    return chan(cid, peer_id=peer, local_sat=local_sat, windows=(month,))


def test_clboss_rebalancer_refills_the_best_earner_from_the_best_inbound_source():
    chans = [
        earner("d1", P1, 100_000, out_fees=2_000_000),  # 10 %: destination
        earner("d2", P2, 200_000, out_fees=5_000_000),  # 20 %: destination, earns more
        earner("s1", P3, 800_000, in_fees=100),  # source
        earner("gap", P4, 260_000, in_fees=10**6),  # 26 %: under 27.5, neither
        earner("s3", P5, 600_000, in_fees=9_999),  # source, earns more inbound
    ]
    # 2 pairs -> top 20 % = 0 -> at least 1. d2 needs 75 % - 20 % = 550M msat; s3 can give
    # 600M - 275M = 325M; budget 325M x 1000 ppm = 325,000 msat <= 5M earned
    orders = ClbossStyle().rebalance(chans, T0)
    assert orders == [RebalanceOrder("d2", "s3", 325_000_000, 1000)]


def test_clboss_rebalancer_boundaries_25_and_27_5_percent():
    at_25 = [earner("d", P1, 250_000, out_fees=10**6), earner("s", P2, 900_000)]
    assert ClbossStyle().rebalance(at_25, T0) == []  # 25 % is not under 25
    at_27_5 = [earner("d", P1, 100_000, out_fees=10**6), earner("s", P2, 275_001)]
    # 275,001 sat is a source; it can give 1 sat = 1,000 msat
    assert ClbossStyle().rebalance(at_27_5, T0) == [RebalanceOrder("d", "s", 1000, 1000)]
    under = [earner("d", P1, 100_000, out_fees=10**6), earner("s", P2, 274_999)]
    assert ClbossStyle().rebalance(under, T0) == []  # 27.4999 %: not a source


def test_clboss_rebalancer_budget_is_capped_by_earnings_and_remembered():
    p = ClbossStyle()
    chans = [earner("d", P1, 200_000, out_fees=100_000), earner("s", P2, 800_000)]
    # 525M msat wanted at 1000 ppm = 525,000 msat > 100,000 earned:
    # budget 100,000 msat, amount 100,000 / 1000 ppm = 100M msat
    assert p.rebalance(chans, T0) == [RebalanceOrder("d", "s", 100_000_000, 1000)]
    # the budget counts as spent: the destination's net earnings are now 0
    assert p.rebalance(chans, T0 + HOUR) == []
    # spends older than the 30-day window are forgotten
    assert p.rebalance(chans, T0 + 30 * DAY) == [RebalanceOrder("d", "s", 100_000_000, 1000)]


def test_clboss_rebalancer_refuses_destinations_that_earned_nothing():
    chans = [earner("d", P1, 100_000), earner("s", P2, 800_000, in_fees=10**6)]
    assert ClbossStyle().rebalance(chans, T0) == []


def test_clboss_rebalancer_pairs_the_top_20_percent_by_rank():
    chans = []
    for i in range(10):
        peer_d, peer_s = f"02d{i:065d}", f"02s{i:065d}"
        chans.append(earner(f"d{i}", peer_d, 100_000, out_fees=1000 * (i + 1)))
        chans.append(earner(f"s{i}", peer_s, 800_000, in_fees=i))
    # 10 pairs -> 2; budgets capped by 10,000 and 9,000 msat earned
    assert ClbossStyle().rebalance(chans, T0) == [
        RebalanceOrder("d9", "s9", 10_000_000, 1000),
        RebalanceOrder("d8", "s8", 9_000_000, 1000),
    ]


def test_clboss_rebalancer_sums_a_peer_and_picks_its_channels():
    chans = [
        earner("d-a", P1, 100_000, out_fees=10**7),
        earner("d-b", P1, 50_000),  # peer P1: 150k of 2M = 7.5 %
        earner("s-a", P2, 700_000),
        earner("s-b", P2, 900_000),  # peer P2: 1.6M of 2M = 80 %
    ]
    # P1 needs 1.5G - 150M = 1.35G msat; P2 can give 1.6G - 550M = 1.05G msat
    assert ClbossStyle().rebalance(chans, T0) == [RebalanceOrder("d-b", "s-b", 1_050_000_000, 1000)]


def test_clboss_rebalancer_runs_on_half_of_the_hourly_timers():
    chans = [earner("d", P1, 100_000, out_fees=10**7), earner("s", P2, 800_000)]
    net = network(peers={P1: lone_peer(100), P2: lone_peer(100)})
    assert ClbossStyle(rng=FixedRng(0.4)).decide(chans, net, T0).rebalances != []
    assert ClbossStyle(rng=FixedRng(0.5)).decide(chans, net, T0).rebalances == []
