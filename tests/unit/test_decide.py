"""The decision engine on hand-built scenarios, and its stability on random ones.

Expected values are computed by hand from the formulas in engine/decide.py (the comments
show the arithmetic). Balanced profile unless stated: target 0.5, low 0.15, high 0.85,
deadband 10 %, steps +25 % / -15 %, fast raise x2 under 2 days, balance sensitivity 4, so
balance_mod = 4 ** ((0.5 - ratio) / 0.5). Rules are never passed: the engine must work
without engine.rules.

The fee floor is the refill cost (peer fee + network median) x refill_margin x unreturned,
where unreturned = (out - in) / out of the week's volume, clamped to [0, 1], once the week's
outflow reaches `full` sat (full = refill cost x margin in ppm); with less outflow it is
blended (weight out / full sat) with the balance prior clamp((0.5 - ratio) / 0.35, 0, 1).

A raise needs 7 forwards out in the week (RAISE_MIN_FORWARDS) unless it is urgent (draining,
or depleted with failed forwards), so the raise scenarios below sell at least that much.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from engine.decide import (
    CLOSE_VBYTES,
    OPEN_VBYTES,
    RAISE_MIN_FORWARDS,
    Decision,
    composite_score,
    days_to_empty,
    demand_falling,
    evaluate_channel,
    evaluate_node,
    fee_target,
    refill_cost_ppm,
)
from engine.heuristics import HeuristicResult
from engine.metrics import ChannelMetrics, FlowWindow, MeasuredChange, NetworkContext, PeerInfo
from engine.node_source import RoutingPolicy
from engine.profiles import BUILTIN, Profile, profile_from_dict

BALANCED = BUILTIN["balanced"]
CONSERVATIVE = BUILTIN["conservative"]
AGGRESSIVE = BUILTIN["aggressive"]
P1, P2, P3, P4 = ("02" + c * 64 for c in "1234")


def policy(fee_ppm: int, inbound: bool = True) -> RoutingPolicy:
    return RoutingPolicy(
        base_fee_msat=1000,
        fee_rate_ppm=fee_ppm,
        cltv_delta=80,
        htlc_min_msat=1000,
        htlc_max_msat=10**12,
        inbound_base_fee_msat=0 if inbound else None,
        inbound_fee_rate_ppm=0 if inbound else None,
    )


def chan(
    *,
    capacity_sat: int = 1_000_000,
    local_sat: int,
    fee_ppm: int | None,
    peer_fee_ppm: int | None = 100,
    peer_id: str = P1,
    channel_id: str = "800000x1x0",
    windows: tuple[FlowWindow, ...] = (),
    age_days: float = 30.0,
    inbound: bool = True,
    **kw,
) -> ChannelMetrics:
    return ChannelMetrics(
        channel_id=channel_id,
        peer_id=peer_id,
        peer_alias=f"alias-{peer_id[2:6]}",
        capacity_sat=capacity_sat,
        local_msat=local_sat * 1000,
        remote_msat=(capacity_sat - local_sat) * 1000,
        active=kw.pop("active", True),
        age_days=age_days,
        local_policy=None if fee_ppm is None else policy(fee_ppm, inbound),
        remote_policy=None if peer_fee_ppm is None else policy(peer_fee_ppm),
        windows={w.days: w for w in windows},
        **kw,
    )


def network(competitors: dict[str, int | None] | None = None, **kw) -> NetworkContext:
    peers = {
        pid: PeerInfo(
            channels=50, capacity_sat=500_000_000, competitor_fee_ppm=fee, competitor_count=20
        )
        for pid, fee in (competitors or {}).items()
    }
    kw.setdefault("median_fee_ppm", 100)
    return NetworkContext(graph_available=True, peers=peers, **kw)


def only(recs, channel_id):
    (rec,) = [r for r in recs if r.channel_id == channel_id]
    return rec


# -- helpers --------------------------------------------------------------------------------


def test_refill_cost_is_peer_fee_plus_a_typical_hop():
    n = network()
    assert refill_cost_ppm(chan(local_sat=1, fee_ppm=1, peer_fee_ppm=40), n) == 140
    # unknown peer policy: the network median stands in for it: 100 + 100
    assert refill_cost_ppm(chan(local_sat=1, fee_ppm=1, peer_fee_ppm=None), n) == 200


def test_days_to_empty():
    # net outflow (700M - 0) / 7 = 100M msat/day; 300M msat local -> 3 days
    week = FlowWindow(7, volume_out_msat=700_000_000)
    assert days_to_empty(300_000_000, week, 0.0) == pytest.approx(3.0)
    # a faster observed drift wins: 200M/day -> 1.5 days
    assert days_to_empty(300_000_000, week, -200_000_000) == pytest.approx(1.5)
    # filling up or flat: not draining
    assert days_to_empty(300_000_000, FlowWindow(7, volume_in_msat=10), 0.0) is None
    assert days_to_empty(300_000_000, FlowWindow(7), 5.0) is None


def test_composite_is_the_weighted_mean_of_present_heuristics():
    results = [HeuristicResult("liquidity", 50.0), HeuristicResult("activity", 100.0)]
    # (50 x 0.2 + 100 x 0.2) / 0.4 = 75
    assert composite_score(results, BALANCED.weights) == 75.0
    assert composite_score(results, {"liquidity": 0.0, "activity": 0.0}) == 0.0
    assert composite_score(results, {"liquidity": 3, "activity": 1}) == 62.5


# -- fee decisions --------------------------------------------------------------------------

BUSY_MONTH = FlowWindow(
    30,
    forwards_out=40,
    forwards_in=40,
    volume_out_msat=400_000_000,
    volume_in_msat=400_000_000,
    fees_msat=192_000,
)


def test_balanced_channel_at_the_competitor_fee_is_left_alone():
    ch = chan(
        capacity_sat=2_000_000,
        local_sat=1_000_000,
        fee_ppm=480,
        windows=(
            FlowWindow(
                7,
                forwards_out=10,
                forwards_in=10,
                volume_out_msat=100_000_000,
                volume_in_msat=100_000_000,
            ),
            BUSY_MONTH,
        ),
        age_days=100,
    )
    n = network({P1: 500})
    t = fee_target([ch], n, BALANCED)
    # ratio 0.5 -> balance_mod 1; net flow 0 -> flow_mod 1; 500 x 1 x 1 = 500
    # refill 100 (peer) + 100 (median) = 200, but the inflow returned all the outflow:
    # unreturned (100M - 100M) / 100M = 0 (weight min(1, 100M / 200,000) = 1)
    # -> floor max(min_fee 1, round(200 x 0)) = 1
    assert (t.target_ppm, t.floor_ppm, t.reference_ppm) == (500, 1, 500)
    assert (t.balance_mod, t.flow_mod, t.days_to_empty) == (1.0, 1.0, None)
    rec = evaluate_channel(ch, n, BALANCED)
    # gap 20 / 480 = 4.2 % < 10 %
    assert rec.decision is Decision.NO_ACTION
    assert rec.suggested.fee_ppm == 480
    assert rec.suggested.target_fee_ppm == 500
    assert any("within 10%" in r for r in rec.reasons)
    # 100 days, 40 forwards out in 30 days, a graph, a clear signal -> full confidence
    assert rec.confidence == 1.0
    assert rec.suggested.rebalance is None and rec.suggested.close is None


DEPLETED_WEEK = FlowWindow(7, forwards_out=2, volume_out_msat=20_000_000, failed_out=5)
# It sold before it ran dry: 59 forwards of 10,000 sat in 30 days, at 200 ppm.
DEPLETED_MONTH = FlowWindow(30, forwards_out=59, volume_out_msat=590_000_000, fees_msat=118_000)


def depleted(**kw) -> ChannelMetrics:
    return chan(
        local_sat=50_000,
        fee_ppm=kw.pop("fee_ppm", 200),
        peer_fee_ppm=50,
        windows=(DEPLETED_WEEK, DEPLETED_MONTH),
        **kw,
    )


def test_depleted_failing_channel_gets_the_fast_raise():
    ch = depleted()
    n = network({P1: 300})
    t = fee_target([ch], n, BALANCED)
    # ratio 0.05: balance_mod = 4 ** 0.9 = 3.48220
    # net flow 20M / 1,000M msat = 0.02 -> flow_mod 1 + 0.5 x 0.02 = 1.01
    # target 300 x 3.48220 x 1.01 = 1055.1 -> 1055
    # floor: nothing came back, unreturned (20M - 0) / 20M = 1 (weight min(1, 20M / 150,000)
    # = 1) -> 150 x 1 = 150
    assert t.balance_mod == pytest.approx(3.482, abs=0.001)
    assert t.flow_mod == pytest.approx(1.01)
    assert (t.target_ppm, t.floor_ppm) == (1055, 150)
    # 50M msat local / (20M / 7 per day) = 17.5 days: not draining fast
    assert t.days_to_empty == pytest.approx(17.5)
    rec = evaluate_channel(ch, n, BALANCED)
    # depleted (0.05 < 0.15) and 5 failed forwards: step 1.0 -> min(1055, ceil(200 x 2)) = 400
    # (urgent: the 2 forwards out this week, fewer than 7, do not hold it)
    assert rec.decision is Decision.INCREASE_FEES
    assert rec.suggested.fee_ppm == min(1055, math.ceil(200 * (1 + BALANCED.fast_raise_step)))
    assert rec.suggested.fee_ppm == 400
    assert any("depleted and failing" in r for r in rec.reasons)
    # inbound discount on the way in: -int(400 x 0.25) = -100, no inbound base fee
    assert rec.suggested.inbound_fee_ppm == -100
    assert rec.suggested.inbound_base_fee_msat == 0
    # htlc max: the largest 1,000M msat / 2^k <= 80 % of 50M = 40M: 1,000M / 32 = 31.25M
    assert rec.suggested.htlc_max_msat == 31_250_000 < ch.local_msat * 8 // 10
    # The refill is worth it even while raising (the decision stays the raise).
    # Demand: 20M / 7 msat a day settled (average 10M per forward); the 5 failures are worth
    # 5 x 10M / 7 = 50M / 7 a day but count at most as much again as what settled: + 20M / 7
    # -> 40M / 7 msat a day, x (1 - 1 / sqrt(59 forwards in 30 days + 5 failed = 64)) = 0.875
    # -> 5M msat a day; x 30 days = 150M msat, less than the (0.5 - 0.05) x 1,000M = 450M
    # wanted: amount 150,000 sat.
    # Refilled, it loses its scarcity premium: valued at min(400, round(300 x 1.01)) = 303 ppm,
    # it earns 150M x 303 / 1e6 = 45,450 msat (45 sat), below the 118,000 msat earned in
    # 30 days, nothing spent on refills: budget int(min(303 x 0.8, 45,450 x 0.8 / 150M x 1e6))
    # = int(242.4) = 242 > cost 50 + 100 = 150; at most 150M x 242 / 1e6 = 36,300 msat = 36 sat
    plan = rec.suggested.rebalance
    assert plan is not None
    assert (plan.amount_sat, plan.max_fee_ppm, plan.estimated_cost_ppm) == (150_000, 242, 150)
    assert (plan.expected_earnings_sat, plan.max_cost_sat) == (45, 36)
    assert rec.reasons[-1].startswith(
        "refill 150,000 sat: expected to earn 45 sat in 30 days, worth up to 242 ppm"
    )


def test_draining_channel_gets_the_fast_raise():
    week = FlowWindow(7, forwards_out=7, volume_out_msat=700_000_000)
    ch = chan(
        local_sat=300_000, fee_ppm=150, windows=(week,), balance_trend_msat_per_day=-200_000_000
    )
    n = network({P1: 200})
    t = fee_target([ch], n, BALANCED)
    # ratio 0.3: 4 ** 0.4 = 1.74110; flow 0.7 -> 1.35; 200 x 1.74110 x 1.35 = 470.1 -> 470
    # drain max(700M / 7, 200M) = 200M msat/day -> 300M / 200M = 1.5 days < 2
    assert t.target_ppm == 470
    assert t.days_to_empty == pytest.approx(1.5)
    rec = evaluate_channel(ch, n, BALANCED, t)
    # fast: min(470, ceil(150 x 2)) = 300
    assert rec.decision is Decision.INCREASE_FEES
    assert rec.suggested.fee_ppm == 300
    assert any("empty in 1.5 days" in r for r in rec.reasons)
    # the same channel draining at 3 days (no drift): the normal step, ceil(150 x 1.25) = 188
    day = FlowWindow(1, forwards_out=1, volume_out_msat=100_000_000)  # demand holds
    slow = replace(ch, balance_trend_msat_per_day=0.0, windows={1: day, 7: week})
    rec = evaluate_channel(slow, n, BALANCED)
    assert rec.decision is Decision.INCREASE_FEES
    assert rec.suggested.fee_ppm == 188
    assert not any("draining" in r for r in rec.reasons)


def test_no_raise_while_demand_falls_unless_draining():
    week = FlowWindow(7, forwards_out=14, volume_out_msat=140_000_000)  # 15 days to empty
    quiet_day = FlowWindow(1, forwards_out=0)
    ch = chan(local_sat=300_000, fee_ppm=150, windows=(week, quiet_day))
    n = network({P1: 200})
    rec = evaluate_channel(ch, n, BALANCED)
    # 0 forwards in the last day against 2 a day this week: the last raise may have priced us out
    assert rec.decision is Decision.NO_ACTION and rec.suggested.fee_ppm == 150
    assert any("no raise while demand falls" in r for r in rec.reasons)
    # A week at less than half the month's pace says the same.
    month = FlowWindow(30, forwards_out=120, volume_out_msat=1_200_000_000)
    slow_week = FlowWindow(7, forwards_out=10, volume_out_msat=100_000_000)
    day = FlowWindow(1, forwards_out=2, volume_out_msat=20_000_000)
    ch = chan(local_sat=300_000, fee_ppm=150, windows=(day, slow_week, month))
    assert demand_falling(ch).startswith("10 forwards out this week against 28.0 a week")
    # Draining fast wins: scarce liquidity must get dearer whatever the demand did.
    draining = replace(
        chan(local_sat=300_000, fee_ppm=150, windows=(week, quiet_day)),
        balance_trend_msat_per_day=-200_000_000,
    )
    assert evaluate_channel(draining, n, BALANCED).decision is Decision.INCREASE_FEES


def test_no_raise_on_fewer_than_a_week_of_forwards_unless_urgent():
    def selling(forwards: int, **kw) -> ChannelMetrics:
        week = FlowWindow(
            7,
            forwards_out=forwards,
            forwards_in=forwards,
            volume_out_msat=forwards * 10_000_000,
            volume_in_msat=forwards * 10_000_000,
        )
        day = FlowWindow(1, forwards_out=1, volume_out_msat=10_000_000)  # demand holds
        return chan(local_sat=300_000, fee_ppm=150, windows=(day, week), **kw)

    n = network({P1: 200})
    # ratio 0.3, net flow 0: target 200 x 4 ** 0.4 = 348.2 -> 348, far above 150
    few = evaluate_channel(selling(RAISE_MIN_FORWARDS - 1), n, BALANCED)
    assert (few.decision, few.suggested.fee_ppm, few.suggested.target_fee_ppm) == (
        Decision.NO_ACTION,
        150,
        348,
    )
    assert any(r.startswith("6 forwards out this week: too few to raise on") for r in few.reasons)
    # 7: min(348, ceil(150 x 1.25)) = 188
    enough = evaluate_channel(selling(RAISE_MIN_FORWARDS), n, BALANCED)
    assert (enough.decision, enough.suggested.fee_ppm) == (Decision.INCREASE_FEES, 188)
    # draining (300M local, drift -200M a day: 1.5 days) is urgent: min(348, 150 x 2) = 300
    urgent = evaluate_channel(selling(6, balance_trend_msat_per_day=-200_000_000), n, BALANCED)
    assert (urgent.decision, urgent.suggested.fee_ppm) == (Decision.INCREASE_FEES, 300)
    # A raise measured to have paid takes one more step only on enough forwards too.
    paid = MeasuredChange(fee_before_ppm=120, fee_after_ppm=150, adjusted_change=0.3)
    rec = evaluate_channel(selling(6, last_measured=paid), n, BALANCED)
    assert rec.decision is Decision.NO_ACTION
    assert any("too few to raise on" in r for r in rec.reasons)
    rec = evaluate_channel(selling(7, last_measured=paid), n, BALANCED)
    assert (rec.decision, rec.suggested.fee_ppm) == (Decision.INCREASE_FEES, 188)
    assert rec.reasons[-1] == (
        "measured: the raise 120 -> 150 ppm earned +30% against the untouched channels: "
        "one more step"
    )


def test_depleted_failing_channel_is_raised_a_step_past_a_lower_target():
    # Competitors into the peer charge 10 ppm: model 10 x 3.48220 x 1.01 = 35.2, held at the
    # refill-cost floor 150 (all of the outflow to buy back). At 400 ppm the target is below the
    # fee, but 5 forwards failed for lack of balance: demand exceeds what the channel holds.
    n = network({P1: 10})
    ch = depleted(fee_ppm=400)
    rec = evaluate_channel(ch, n, BALANCED)
    # one step: max(min(5000, ceil(400 x 1.25)), 400 + 5) = 500, past the target of 150
    assert (rec.decision, rec.suggested.fee_ppm, rec.suggested.target_fee_ppm) == (
        Decision.INCREASE_FEES,
        500,
        150,
    )
    assert (
        "raise 400 -> 500 ppm: depleted, and 5 forwards failed for lack of balance this week"
        in rec.reasons
    )
    # one step per measurement: not while the last change is measured (nor a cut then)
    rec = evaluate_channel(replace(ch, measuring=True), n, BALANCED)
    assert (rec.decision, rec.suggested.fee_ppm) == (Decision.NO_ACTION, 400)
    # a raise that paid takes the next step, though only 2 forwards went out this week
    paid = MeasuredChange(fee_before_ppm=320, fee_after_ppm=400, adjusted_change=0.1)
    rec = evaluate_channel(replace(ch, last_measured=paid), n, BALANCED)
    assert (rec.decision, rec.suggested.fee_ppm) == (Decision.INCREASE_FEES, 500)
    assert "one more step" in rec.reasons[len(fee_target([ch], n, BALANCED).reasons)]
    # without failures nothing says demand exceeds the balance: the fee follows the target,
    # max(150, 150, floor(400 x 0.85)) = 340
    calm = replace(ch, windows={7: replace(DEPLETED_WEEK, failed_out=0), 30: DEPLETED_MONTH})
    rec = evaluate_channel(calm, n, BALANCED)
    assert (rec.decision, rec.suggested.fee_ppm) == (Decision.DECREASE_FEES, 340)


IDLE_WEEK = FlowWindow(7, forwards_in=3, volume_in_msat=30_000_000)
# Two forwards out, nothing back: all of the outflow has to be bought back (unreturned 1).
SELLING_WEEK = FlowWindow(7, forwards_out=2, volume_out_msat=20_000_000)


def saturated(fee_ppm: int, week: FlowWindow = IDLE_WEEK, **kw) -> ChannelMetrics:
    return chan(local_sat=950_000, fee_ppm=fee_ppm, windows=(week,), **kw)


def test_saturated_idle_channel_steps_down():
    n = network({P1: 200})
    ch = saturated(1000)
    t = fee_target([ch], n, BALANCED)
    # ratio 0.95: 4 ** -0.9 = 0.28717; flow -30M / 1,000M = -0.03 -> 0.985
    # 200 x 0.28717 x 0.985 = 56.6, idle: min(56.6, 1000 x 0.85) = 56.6
    # floor: no outflow, prior clamp((0.5 - 0.95) / 0.35) = 0: an idle saturated channel needs
    # no refill -> max(min_fee 1, round(200 x 0)) = 1; target round(56.6) = 57
    assert (t.target_ppm, t.floor_ppm) == (57, 1)
    assert any("idle" in r for r in t.reasons)
    assert not any("floor" in r for r in t.reasons)
    rec = evaluate_channel(ch, n, BALANCED, t)
    # one step at most: max(57, 1, floor(1000 x 0.85)) = 850
    assert rec.decision is Decision.DECREASE_FEES
    assert rec.suggested.fee_ppm == 850
    assert rec.suggested.htlc_max_msat == 990_000_000  # 99 % of the capacity
    assert rec.suggested.inbound_fee_ppm == 0


def test_the_idle_cut_waits_for_a_whole_idle_week_at_the_current_fee():
    # Competitors charge 200 ppm, so the model's target is above our 100 ppm: only the idle
    # rule cuts, by 15 % x (0.6 - 0.15) / 0.7 of the fee. A week without forwards that began
    # at an older fee says nothing about this one: the same week cut a channel seven times.
    n = network({P1: 200})
    ch = chan(local_sat=600_000, fee_ppm=100, windows=(IDLE_WEEK,))
    recent = evaluate_channel(replace(ch, fee_unchanged_days=2.0), n, BALANCED)
    assert (recent.decision, recent.suggested.fee_ppm) == (Decision.NO_ACTION, 100)
    assert any("changed 2.0 days ago" in r for r in recent.reasons)
    for days in (7.0, None):  # a week at this fee, or no change seen lately
        idle = evaluate_channel(replace(ch, fee_unchanged_days=days), n, BALANCED)
        # 100 x (1 - 0.15 x 0.45 / 0.7) = 90.36 -> 90
        assert (idle.decision, idle.suggested.fee_ppm) == (Decision.DECREASE_FEES, 90)


def test_saturated_channel_with_unreturned_outflow_never_goes_below_the_floor():
    n = network({P1: 200})
    ch = saturated(230, SELLING_WEEK)
    t = fee_target([ch], n, BALANCED)
    # model 200 x 0.28717 x (1 + 0.5 x 20M / 1,000M = 1.01) = 58.0; unreturned
    # (20M - 0) / 20M = 1 (weight min(1, 20M / 200,000) = 1) -> floor 200 x 1 = 200
    assert (t.target_ppm, t.floor_ppm) == (200, 200)
    # 230 -> max(200, 200, floor(230 x 0.85) = 195) = 200: the floor stops the step
    rec = evaluate_channel(ch, n, BALANCED, t)
    assert rec.decision is Decision.DECREASE_FEES
    assert rec.suggested.fee_ppm == 200
    # The same channel idle (inflow only): nothing to buy back, floor 1, target 57, so the
    # step is not held at the refill cost: max(57, 1, 195) = 195
    idle = evaluate_channel(saturated(230), n, BALANCED)
    assert (idle.decision, idle.suggested.fee_ppm) == (Decision.DECREASE_FEES, 195)


def test_fee_at_the_floor_stays_with_the_floor_as_the_reason():
    n = network({P1: 200})
    ch = saturated(200, SELLING_WEEK)
    rec = evaluate_channel(ch, n, BALANCED)
    # the model says 58.0 ppm, but refilling the unreturned outflow costs 100 + 100 = 200
    assert rec.decision is Decision.NO_ACTION
    assert rec.suggested.fee_ppm == 200
    assert rec.suggested.target_fee_ppm == 200
    assert any("floor 200 ppm (model: 58 ppm)" in r for r in rec.reasons), rec.reasons


def test_floor_without_outflow_follows_the_balance():
    # No outflow this week, inflow only. refill 500 (peer) + 100 = 600 ppm; competitors 100.
    n = network({P1: 100})
    inflow = FlowWindow(7, forwards_in=3, volume_in_msat=30_000_000)

    def floor(local_sat: int, out_msat: int = 0) -> int:
        week = replace(inflow, volume_out_msat=out_msat)
        ch = chan(local_sat=local_sat, fee_ppm=300, peer_fee_ppm=500, windows=(week,))
        return fee_target([ch], n, BALANCED).floor_ppm

    # depleted (ratio <= 0.15): all of it -> 600; at or above the target 0.5: none -> 1
    assert (floor(50_000), floor(150_000), floor(500_000), floor(900_000)) == (600, 600, 1, 1)
    # in between, linear: ratio 0.3 -> (0.5 - 0.3) / 0.35 = 0.5714 x 600 = 342.9 -> 343
    assert floor(300_000) == 343
    # 1 sat out (and 30M in) barely counts: weight 1,000 / 600,000 msat, share 0
    # -> (1 - 1/600) x 0.5714 x 600 = 342.3 -> 342 (not 1, as (out - in) / out alone says)
    assert floor(300_000, 1_000) == 342
    # from 600 sat out (= full 600 ppm, in sat) on, only the share counts: 600 sat out and
    # 30,000 sat in -> 0 -> 1
    assert floor(300_000, 600_000) == 1


def test_one_sat_across_the_target_ratio_does_not_flip_an_idle_channel():
    # The case a step prior (1 below the target ratio, 0 from it) got wrong: 499,999 sat
    # raised 300 -> 375 towards the 600 ppm floor, 500,001 sat cut it to 255.
    n = network({P1: 100})
    inflow = FlowWindow(7, forwards_in=3, volume_in_msat=30_000_000)
    recs = [
        evaluate_channel(
            chan(local_sat=local, fee_ppm=300, peer_fee_ppm=500, windows=(inflow,)), n, BALANCED
        )
        for local in (499_999, 500_000, 500_001)
    ]
    # ratio 0.499999: floor max(1, round(600 x 0.000001 / 0.35 = 0.0017)) = 1; model
    # 100 x 4 ** 0.000002 x (1 - 0.5 x 0.03) = 98.50027 -> 99. At 0.5: floor 1, 98.5 -> 98
    # (half to even). At 0.500001: 98.49973 -> 98. All three are idle (no forwards out, above
    # the low ratio): the idle cap 300 x (1 - 0.15 x (0.5 - 0.15) / 0.7) = 277.5 is above
    # the model, which stands.
    # Every one: a cut of one step, max(target, 1, floor(300 x 0.85) = 255) = 255.
    assert [r.suggested.target_fee_ppm for r in recs] == [99, 98, 98]
    assert {(r.decision, r.suggested.fee_ppm) for r in recs} == {(Decision.DECREASE_FEES, 255)}


TWO_WAY_WEEK = FlowWindow(
    7, forwards_out=10, forwards_in=10, volume_out_msat=100_000_000, volume_in_msat=100_000_000
)
# demand holds: 1 forward out in the last day is not below half the week's 10 / 7 a day
TWO_WAY_DAY = FlowWindow(
    1, forwards_out=1, forwards_in=1, volume_out_msat=10_000_000, volume_in_msat=10_000_000
)


def test_fee_above_the_profile_maximum_moves_to_it_at_once():
    capped = replace(BALANCED, max_fee_ppm=1000)
    n = network({P1: 2000})
    ch = chan(local_sat=500_000, fee_ppm=3000, windows=(TWO_WAY_WEEK,))
    # model 2000 x 1 x 1; 10 forwards out at 3000 ppm keep it at 3000; capped to 1000
    assert fee_target([ch], n, capped).target_ppm == 1000
    rec = evaluate_channel(ch, n, capped)
    # straight to 1000, not one step (floor(3000 x 0.85) = 2550)
    assert (rec.decision, rec.suggested.fee_ppm) == (Decision.DECREASE_FEES, 1000)
    assert "fee 3000 ppm is outside the profile's 1-1000 ppm" in rec.reasons
    # 1050 is within the deadband of the target 1000 (50 / 1050 = 4.8 % < 10 %), but outside
    # the bounds: moved all the same
    near = replace(ch, local_policy=replace(ch.local_policy, fee_rate_ppm=1050))
    rec = evaluate_channel(near, n, capped)
    assert (rec.decision, rec.suggested.fee_ppm) == (Decision.DECREASE_FEES, 1000)
    # at the bound: nothing to do (target 1000)
    at = replace(ch, local_policy=replace(ch.local_policy, fee_rate_ppm=1000))
    rec = evaluate_channel(at, n, capped)
    assert (rec.decision, rec.suggested.fee_ppm) == (Decision.NO_ACTION, 1000)


def test_fee_below_the_profile_minimum_moves_to_it_at_once():
    floored = replace(BALANCED, min_fee_ppm=50)
    n = network({P1: 50}, median_fee_ppm=50)
    ch = chan(local_sat=500_000, fee_ppm=48, windows=(TWO_WAY_WEEK,))
    # model 50 x 1 x 1 = 50; unreturned 0 -> floor max(50, 0) = 50; target 50
    t = fee_target([ch], n, floored)
    assert (t.target_ppm, t.floor_ppm) == (50, 50)
    # gap 2 < min_fee_delta 5 (and 4 % < 10 %): the deadband would keep 48; the bound does not.
    # Exactly to the bound, not a step (ceil(48 x 1.25) = 60)
    rec = evaluate_channel(ch, n, floored)
    assert (rec.decision, rec.suggested.fee_ppm) == (Decision.INCREASE_FEES, 50)
    assert "fee 48 ppm is outside the profile's 50-5000 ppm" in rec.reasons
    # within the bounds, the same gap is left alone
    rec = evaluate_channel(ch, n, replace(floored, min_fee_ppm=40))
    assert (rec.decision, rec.suggested.fee_ppm) == (Decision.NO_ACTION, 48)


def test_unknown_policy_is_no_action_with_low_confidence():
    ch = chan(local_sat=500_000, fee_ppm=None, windows=(BUSY_MONTH,))
    rec = evaluate_channel(ch, network({P1: 200}), BALANCED)
    assert rec.decision is Decision.NO_ACTION
    assert rec.suggested.fee_ppm is None
    assert rec.suggested.inbound_fee_ppm is None
    assert rec.suggested.htlc_max_msat is None
    assert rec.suggested.base_fee_msat is None
    assert rec.confidence <= 0.2
    assert any("unknown" in r for r in rec.reasons)
    assert rec.scores["competitiveness"] == 50.0


# -- rebalance ------------------------------------------------------------------------------

DEMAND_WEEK = FlowWindow(
    7, forwards_out=21, volume_out_msat=210_000_000, volume_in_msat=110_000_000
)
# 100 forwards of 10,000 sat in 30 days at 700 ppm: 700,000 msat earned, no refill paid yet
DEMAND_MONTH = FlowWindow(
    30,
    forwards_out=100,
    volume_out_msat=1_000_000_000,
    volume_in_msat=500_000_000,
    fees_msat=700_000,
)


def demand_channel(peer_fee_ppm: int, month: FlowWindow = DEMAND_MONTH) -> ChannelMetrics:
    return chan(
        capacity_sat=2_000_000,
        local_sat=100_000,
        fee_ppm=700,
        peer_fee_ppm=peer_fee_ppm,
        windows=(DEMAND_WEEK, month),
        channel_id="800000x1x0",
    )


# The demand channel, by hand (balanced profile, competitors into P1 charge 200 ppm):
# fee target 200 x 4 ** 0.9 (3.48220) x flow (1 + 0.5 x (210M - 110M) / 2,000M = 1.025)
# = 713.9 -> 714; gap 14 / 700 = 2 % < 10 %: the fee stays at 700.
# Demand 210M / 7 = 30M msat a day (nothing failed), x (1 - 1 / sqrt(100 forwards in 30
# days)) = 0.9 -> 27M; x 30 days = 810M msat, less than the (0.5 - 0.05) x 2,000M = 900M
# wanted: amount 810,000 sat. Refilled, the liquidity is valued at min(700, round(200 x
# 1.025)) = 205 ppm, not at today's scarcity price: it earns 810M x 205 / 1e6 = 166,050 msat.
DEMAND_NETWORK = {P1: 200, P2: 200, P3: 200, P4: 200}


def sources() -> list[ChannelMetrics]:
    """Three saturated channels, each with spare liquidity (local - 0.5 x capacity) for the
    810,000 sat refill below, so only their order and state decide which one is picked."""
    idle = (FlowWindow(7, forwards_out=0), FlowWindow(30, forwards_out=30, forwards_in=30))
    busy = (FlowWindow(7, forwards_out=2), FlowWindow(30, forwards_out=30, forwards_in=30))
    return [
        # saturated (0.99, spare 2,970,000 - 1,500,000 = 1,470,000 sat) but offline: not a
        # source, although it would sort first (idle and the most local)
        chan(
            capacity_sat=3_000_000,
            local_sat=2_970_000,
            fee_ppm=100,
            peer_id=P4,
            channel_id="700000x4x0",
            windows=idle,
            active=False,
        ),
        # saturated (spare 1,400,000 sat) and busier (2 forwards out this week): second choice
        chan(
            capacity_sat=3_000_000,
            local_sat=2_900_000,
            fee_ppm=100,
            peer_id=P3,
            channel_id="700000x3x0",
            windows=busy,
        ),
        # saturated (0.9, spare 1,200,000 sat) and idle: the best source
        chan(
            capacity_sat=3_000_000,
            local_sat=2_700_000,
            fee_ppm=100,
            peer_id=P2,
            channel_id="700000x2x0",
            windows=idle,
        ),
    ]


def test_depleted_channel_with_demand_and_cheap_refill_is_rebalanced():
    x = demand_channel(peer_fee_ppm=20)
    n = network(DEMAND_NETWORK)
    recs = evaluate_node([x, *sources()], n, BALANCED)
    rec = only(recs, x.channel_id)
    assert rec.suggested.target_fee_ppm == 714
    assert rec.suggested.fee_ppm == 700
    assert rec.decision is Decision.REBALANCE
    plan = rec.suggested.rebalance
    # 166,050 msat earned is less than the 700,000 earned in 30 days, nothing spent:
    # budget int(min(205 x 0.8, 166,050 x 0.8 / 810M x 1e6)) = 164; cost 20 + 100 = 120 < 164
    assert plan.direction == "in"
    assert plan.amount_sat == 810_000 < int((BALANCED.target_ratio - 0.05) * 2_000_000)
    assert plan.max_fee_ppm == 164 == int(205 * BALANCED.rebalance_safety)
    assert plan.estimated_cost_ppm == 120
    assert plan.expected_earnings_sat == 166
    assert plan.max_cost_sat == 810_000 * 164 // 1_000_000 == 132
    # the offline x4 is skipped; the idle x2 sorts before the busier x3 and its spare
    # 1,200,000 sat covers the 810,000
    assert plan.source_channel_id == "700000x2x0"
    assert any("refill 810,000 sat: expected to earn 166 sat in 30 days" in r for r in rec.reasons)
    assert "source: 700000x2x0 (alias-2222)" in rec.reasons
    # signal min(1, 164 / 120 - 1) = 0.3667; a month of history (30 days, 100 forwards) and a
    # graph: (0.3 + 0.6 + 0.1) x 0.3667 -> 0.37
    assert rec.confidence == 0.37


def test_rebalance_source_is_never_the_same_peer():
    x = demand_channel(peer_fee_ppm=20)
    # saturated (0.93) with spare 2,800,000 - 1,500,000 = 1,300,000 sat >= the 810,000 needed:
    # only its peer (the same as x's) keeps it from being the source
    same_peer_full = chan(
        capacity_sat=3_000_000,
        local_sat=2_800_000,
        fee_ppm=700,
        peer_id=P1,
        channel_id="700000x9x0",
        windows=(DEMAND_MONTH,),
    )
    # Pooled with it, x's group is at 2,900,000 / 5,000,000 = 0.58 with x's 21 forwards out:
    # the fee is kept at 700 (demand), and the refill valued at round(200 x (1 + 0.5 x 100M /
    # 5,000M)) = 202 ppm: budget int(202 x 0.8) = 161 > cost 120, for the same 810,000 sat.
    recs = evaluate_node([x, same_peer_full], network({P1: 200}), BALANCED)
    rec = only(recs, x.channel_id)
    plan = rec.suggested.rebalance
    assert plan is not None
    assert (plan.amount_sat, plan.max_fee_ppm) == (810_000, 161)
    assert plan.source_channel_id is None
    assert "no channel has enough spare liquidity to serve as the source" in rec.reasons
    # the same channel to another peer is a source
    other = replace(same_peer_full, peer_id=P2)
    recs = evaluate_node([x, other], network({P1: 200, P2: 200}), BALANCED)
    assert only(recs, x.channel_id).suggested.rebalance.source_channel_id == "700000x9x0"


def test_two_refills_never_count_on_the_same_spare_liquidity():
    # Two depleted channels (other peers), each refilled by 150,000 sat: what their demand
    # sells in 30 days, budget 242 > cost 150 (as in
    # test_depleted_failing_channel_gets_the_fast_raise).
    a = depleted(peer_id=P1, channel_id="800000x1x0")
    b = depleted(peer_id=P3, channel_id="800000x3x0")
    # saturated (0.95) and idle, spare 380,000 - 200,000 = 180,000 sat: enough for one of them
    small = chan(
        capacity_sat=400_000,
        local_sat=380_000,
        fee_ppm=100,
        peer_id=P2,
        channel_id="700000x2x0",
        windows=(FlowWindow(7),),
    )
    # busier (2 forwards out), so second in line; spare 1,900,000 - 1,000,000 = 900,000 sat
    big = chan(
        capacity_sat=2_000_000,
        local_sat=1_900_000,
        fee_ppm=100,
        peer_id=P4,
        channel_id="700000x4x0",
        windows=(FlowWindow(7, forwards_out=2, volume_out_msat=2_000_000),),
    )
    n = network({P1: 300, P2: 300, P3: 300, P4: 300})

    def source(recs, ch):
        plan = only(recs, ch.channel_id).suggested.rebalance
        assert plan is not None and plan.amount_sat == 150_000
        return plan.source_channel_id

    # a takes the first source in line (small, 180,000 >= 150,000), leaving it 30,000 sat;
    # b skips it and takes big (900,000 >= 150,000)
    recs = evaluate_node([a, b, small, big], n, BALANCED)
    assert (source(recs, a), source(recs, b)) == ("700000x2x0", "700000x4x0")
    # the order of the channels decides who is served first
    recs = evaluate_node([b, a, small, big], n, BALANCED)
    assert (source(recs, a), source(recs, b)) == ("700000x4x0", "700000x2x0")
    # without big, b finds no source with 150,000 sat to spare: none, and says so
    recs = evaluate_node([a, b, small], n, BALANCED)
    assert (source(recs, a), source(recs, b)) == ("700000x2x0", None)
    assert "no channel has enough spare liquidity to serve as the source" in (
        only(recs, b.channel_id).reasons
    )
    assert not any("spare liquidity" in r for r in only(recs, a.channel_id).reasons)
    # spare of exactly the amount (350,000 local, 0.875: 150,000 sat) serves one plan, then 0
    # is left; 1 sat less (149,999 sat) serves none
    exact = replace(small, local_msat=350_000_000, remote_msat=50_000_000)
    recs = evaluate_node([a, b, exact], n, BALANCED)
    assert (source(recs, a), source(recs, b)) == ("700000x2x0", None)
    short = replace(small, local_msat=349_999_000, remote_msat=50_001_000)
    recs = evaluate_node([a, b, short], n, BALANCED)
    assert (source(recs, a), source(recs, b)) == (None, None)


def test_expensive_refill_is_not_rebalanced():
    x = demand_channel(peer_fee_ppm=500)
    n = network(DEMAND_NETWORK)
    t = fee_target([x], n, BALANCED)
    # refill 500 + 100 = 600 ppm; unreturned (210M - 110M) / 210M = 0.47619 (weight
    # min(1, 210M / 600,000) = 1) -> floor round(285.7) = 286 < the model's 714
    assert (t.floor_ppm, t.target_ppm) == (286, 714)
    rec = only(evaluate_node([x, *sources()], n, BALANCED), x.channel_id)
    # gap 14 / 700 = 2 %: the fee stays at 700
    assert rec.decision is Decision.NO_ACTION
    assert rec.suggested.fee_ppm == 700
    # the refilled liquidity is worth 205 ppm x 0.8 -> budget 164 < 600
    assert rec.suggested.rebalance is None
    assert (
        "a rebalance would cost ~600 ppm, more than the 164 ppm its expected earnings allow"
        in rec.reasons
    ), rec.reasons
    assert not any("source" in r for r in rec.reasons)


def test_rebalance_budget_is_what_the_channel_earned_at_most():
    # A forecast is not money: the same demand, but only 150,000 msat earned in 30 days (less
    # than the 166,050 the refill is expected to earn): budget int(min(205 x 0.8, 150,000 x
    # 0.8 / 810M x 1e6 = 148.1)) = 148 > cost 120
    n = network(DEMAND_NETWORK)
    little = replace(DEMAND_MONTH, fees_msat=150_000)
    plan = evaluate_channel(demand_channel(20, little), n, BALANCED).suggested.rebalance
    assert (plan.amount_sat, plan.max_fee_ppm, plan.expected_earnings_sat) == (810_000, 148, 166)
    # 100,000 msat earned: 80,000 / 810M x 1e6 = 98.8 -> 98 < 120: no refill
    less = replace(DEMAND_MONTH, fees_msat=100_000)
    rec = evaluate_channel(demand_channel(20, less), n, BALANCED)
    assert rec.suggested.rebalance is None
    assert "a rebalance would cost ~120 ppm, more than the 98 ppm its expected earnings allow" in (
        rec.reasons
    )


def test_refill_costs_already_paid_come_off_the_rebalance_allowance():
    n = network(DEMAND_NETWORK)
    # 20,000 msat paid for refills in 30 days (horizon 30 days: all of it counts):
    # allowance min(166,050, 700,000) x 0.8 - 20,000 = 112,840 msat
    # -> budget int(min(164, 112,840 / 810M x 1e6 = 139.3)) = 139 > cost 120 (was 164 unpaid);
    # at most 810,000 x 139 / 1e6 = 112.6 -> 112 sat
    paid = replace(DEMAND_MONTH, refill_cost_msat=20_000)
    rec = evaluate_channel(demand_channel(20, paid), n, BALANCED)
    plan = rec.suggested.rebalance
    assert rec.decision is Decision.REBALANCE
    assert (plan.amount_sat, plan.max_fee_ppm, plan.max_cost_sat) == (810_000, 139, 112)
    # 60,000 msat paid: 132,840 - 60,000 = 72,840 -> 89.9 -> 89 < 120: no refill
    more = replace(DEMAND_MONTH, refill_cost_msat=60_000)
    rec = evaluate_channel(demand_channel(20, more), n, BALANCED)
    assert rec.suggested.rebalance is None
    assert rec.decision is Decision.NO_ACTION
    assert "a rebalance would cost ~120 ppm, more than the 89 ppm its expected earnings allow" in (
        rec.reasons
    )
    # with a 15-day horizon half of what was paid counts against half the earnings:
    # 810M -> min(900M, 27M x 15) = 405M msat, earning 405M x 205 / 1e6 = 83,025;
    # 83,025 x 0.8 - 20,000 x 15 / 30 = 56,420 -> 139.3 -> 139 (all of it: 46,420 -> 114)
    short = replace(BALANCED, rebalance_horizon_days=15)
    plan = evaluate_channel(demand_channel(20, paid), n, short).suggested.rebalance
    assert (plan.amount_sat, plan.max_fee_ppm) == (405_000, 139)


def test_no_rebalance_while_refills_cost_more_than_the_channel_earned():
    # 750,000 msat paid for refills into it in 30 days, 700,000 earned: measured not to pay
    costly = replace(DEMAND_MONTH, refill_cost_msat=750_000)
    rec = evaluate_channel(demand_channel(20, costly), network(DEMAND_NETWORK), BALANCED)
    assert rec.suggested.rebalance is None
    assert rec.decision is Decision.NO_ACTION and rec.suggested.fee_ppm == 700
    assert (
        "refills into it cost 750 sat in 30 days, more than the 700 sat it earned: "
        "no more refills until it earns them"
    ) in rec.reasons
    # cheap as the refill is (120 ppm, budget 164 unpaid), not even the budget is computed
    assert not any("expected earnings allow" in r for r in rec.reasons)


def test_depleted_without_demand_is_not_rebalanced():
    ch = chan(local_sat=50_000, fee_ppm=1000, windows=(FlowWindow(7, forwards_out=1),))
    rec = evaluate_channel(ch, network({P1: 300}), BALANCED)
    assert rec.suggested.rebalance is None
    assert any("too little demand" in r for r in rec.reasons)
    # 3 forwards of 1,000 sat: 3M / 7 msat a day x (1 - 1 / sqrt(3)) = 181,136 msat, x 30 days
    # = 5.4M msat, less than 1 % of the capacity (10M msat): not worth a refill, whatever the
    # 300,000 msat earned in 30 days would allow
    week = FlowWindow(7, forwards_out=3, volume_out_msat=3_000_000)
    month = FlowWindow(30, forwards_out=3, volume_out_msat=3_000_000, fees_msat=300_000)
    rec = evaluate_channel(replace(ch, windows={7: week, 30: month}), network({P1: 300}), BALANCED)
    assert rec.suggested.rebalance is None
    assert "depleted, but too little demand to pay for a rebalance" in rec.reasons
    # ten times the volume: 30M / 7 x 0.42265 x 30 = 54.3M msat, above 1 %: refilled
    week, month = (
        replace(week, volume_out_msat=30_000_000),
        replace(month, volume_out_msat=30_000_000),
    )
    rec = evaluate_channel(replace(ch, windows={7: week, 30: month}), network({P1: 300}), BALANCED)
    assert rec.suggested.rebalance.amount_sat == 54_340


# -- close ----------------------------------------------------------------------------------

QUIET_MONTH = FlowWindow(30, forwards_out=1, volume_out_msat=1_000_000, fees_msat=1_000)


def idle_big(age_days: float, month: FlowWindow = QUIET_MONTH, fee_ppm: int = 50) -> ChannelMetrics:
    return chan(
        capacity_sat=5_000_000,
        local_sat=4_500_000,
        fee_ppm=fee_ppm,
        age_days=age_days,
        windows=(month,),
    )


def test_old_idle_channel_with_tiny_earnings_is_closed():
    n = network({P1: 100}, onchain_feerate_sat_vb=10)
    rec = evaluate_channel(idle_big(200), n, BALANCED)
    assert rec.decision is Decision.CLOSE_CHANNEL
    close = rec.suggested.close
    # cost (170 + 154) vB x 10 sat/vB = 3,240 sat
    assert close.close_and_reopen_cost_sat == (CLOSE_VBYTES + OPEN_VBYTES) * 10 == 3_240
    # elsewhere 4,500,000 x 2 % x 180 / 365 = 44,383.56 sat; earned 1 sat x 180 / 30 = 6
    # gain 44,377.56 - 3,240 = 41,137.56 -> 41,137
    assert close.expected_gain_sat == 41_137
    assert close.freed_local_sat == 4_500_000
    assert "earned 1 sat in 30 days" in close.reason
    assert any("3,240 sat" in r for r in rec.reasons)
    # signal 1 (gain >> cost); history min(1, 200/30) x min(1, (1 + 5) / 25) = 0.24
    # confidence (0.3 + 0.6 x 0.24 + 0.1) x 1 = 0.544 -> 0.54
    assert rec.confidence == 0.54


def test_an_idle_channel_dearer_than_half_its_competitors_is_cut_before_it_is_closed():
    n = network({P1: 100}, onchain_feerate_sat_vb=10)
    rec = evaluate_channel(idle_big(200, fee_ppm=100), n, BALANCED)
    assert rec.decision is Decision.DECREASE_FEES and rec.suggested.close is None
    # idle share (0.9 - 0.15) / (0.85 - 0.15) > 1 -> 1: a full step, 100 x (1 - 0.15) = 85
    assert rec.suggested.fee_ppm == 85
    assert any("a cheaper fee is tried before closing: down to 50 ppm" in r for r in rec.reasons)
    # At half the competitors' median, nothing more to try: closed (the test above).
    assert evaluate_channel(idle_big(200, fee_ppm=50), n, BALANCED).suggested.close is not None


def test_young_channel_is_not_closed():
    n = network({P1: 100}, onchain_feerate_sat_vb=10)
    rec = evaluate_channel(idle_big(BALANCED.close_min_age_days - 1), n, BALANCED)
    assert rec.decision is not Decision.CLOSE_CHANNEL
    assert rec.suggested.close is None
    # a conservative profile waits 120 days
    assert evaluate_channel(idle_big(100), n, CONSERVATIVE).suggested.close is None


def test_active_channel_is_not_closed():
    n = network({P1: 100}, onchain_feerate_sat_vb=10)
    busy = FlowWindow(30, forwards_out=6, forwards_in=6, volume_out_msat=6_000_000, fees_msat=1_000)
    rec = evaluate_channel(idle_big(200, busy), n, BALANCED)
    assert rec.decision is not Decision.CLOSE_CHANNEL
    assert rec.suggested.close is None


def test_expensive_chain_prevents_the_close():
    # 200 sat/vB: cost 64,800 > gain 44,377.56
    n = network({P1: 100}, onchain_feerate_sat_vb=200)
    assert evaluate_channel(idle_big(200), n, BALANCED).suggested.close is None


def test_fees_earned_elsewhere_for_traffic_brought_in_prevent_the_close():
    n = network({P1: 100}, onchain_feerate_sat_vb=10)
    # 7,000 sat assisted + 1 sat own = 7,001 sat in 30 days -> x 180 / 30 = 42,006 sat;
    # gain 44,383.56 - 42,006 = 2,377.56 <= cost 3,240: kept
    helper = replace(QUIET_MONTH, assisted_fees_msat=7_000_000)
    rec = evaluate_channel(idle_big(200, helper), n, BALANCED)
    assert rec.suggested.close is None
    assert rec.decision is not Decision.CLOSE_CHANNEL
    # 2,000 sat assisted: 2,001 sat -> 12,006; gain 44,383.56 - 12,006 = 32,377.56
    # - 3,240 = 29,137.56 -> 29,137: closed, and the reason counts both
    some = replace(QUIET_MONTH, assisted_fees_msat=2_000_000)
    rec = evaluate_channel(idle_big(200, some), n, BALANCED)
    assert rec.decision is Decision.CLOSE_CHANNEL
    assert rec.suggested.close.expected_gain_sat == 29_137
    assert "earned 2,001 sat in 30 days (own and assisted)" in rec.suggested.close.reason


def test_closing_an_offline_channel_warns_about_the_force_close_delay():
    n = network({P1: 100}, onchain_feerate_sat_vb=10)
    warning = "peer offline: a force close locks the funds for the CSV delay"
    online = evaluate_channel(idle_big(200), n, BALANCED)
    offline = evaluate_channel(replace(idle_big(200), active=False), n, BALANCED)
    assert online.decision is offline.decision is Decision.CLOSE_CHANNEL
    assert warning not in online.reasons
    assert offline.reasons == [*online.reasons, warning]
    assert offline.suggested.close == online.suggested.close


# -- the whole node -------------------------------------------------------------------------


def test_channels_to_one_peer_share_the_target():
    # a sells (10 forwards out this week, as many in, one in the last day): it may be raised
    a = chan(
        local_sat=200_000,
        fee_ppm=100,
        peer_fee_ppm=50,
        channel_id="800000x1x0",
        windows=(TWO_WAY_DAY, TWO_WAY_WEEK),
    )
    b = chan(local_sat=700_000, fee_ppm=300, peer_fee_ppm=50, channel_id="800000x2x0")
    other = chan(local_sat=500_000, fee_ppm=100, peer_id=P2, channel_id="800000x3x0")
    recs = evaluate_node([a, b, other], network({P1: 200, P2: 100}), BALANCED, rules=None)
    ra, rb, ro = (only(recs, c.channel_id) for c in (a, b, other))
    # pooled ratio (200k + 700k) / 2M = 0.45: 4 ** 0.1 = 1.14870; net flow 0
    # 200 x 1.14870 = 229.7 -> 230 for both; floor: the pooled outflow all came back
    # (unreturned 0, weight min(1, 100M / 150,000) = 1) -> 1
    assert ra.suggested.target_fee_ppm == rb.suggested.target_fee_ppm == 230
    assert (ra.decision, ra.suggested.fee_ppm) == (Decision.INCREASE_FEES, 125)  # ceil(125)
    assert (rb.decision, rb.suggested.fee_ppm) == (Decision.DECREASE_FEES, 255)  # 300 x .85
    for r in (ra, rb):
        assert any("shares its fee target with 1 other channel(s)" in x for x in r.reasons)
    assert not any("shares its fee target" in x for x in ro.reasons)
    assert [r.channel_id for r in recs] == [a.channel_id, b.channel_id, other.channel_id]


def test_inbound_fee_only_where_the_backend_has_inbound_fields():
    n = network({P1: 300})
    with_fields = evaluate_channel(depleted(), n, BALANCED)
    without = evaluate_channel(depleted(inbound=False), n, BALANCED)
    balanced = evaluate_channel(chan(local_sat=500_000, fee_ppm=300), n, BALANCED)
    assert with_fields.suggested.inbound_fee_ppm == -int(400 * BALANCED.inbound_discount)
    assert without.suggested.inbound_fee_ppm is None
    assert without.suggested.inbound_base_fee_msat is None
    assert balanced.suggested.inbound_fee_ppm == 0
    # the htlc maximum follows the depleted balance whatever the backend: 1,000M / 32
    assert without.suggested.htlc_max_msat == 31_250_000


def test_depleted_htlc_max_moves_only_when_the_balance_crosses_a_power_of_two():
    def htlc(local_sat: int, capacity_sat: int = 1_000_000) -> int:
        ch = chan(capacity_sat=capacity_sat, local_sat=local_sat, fee_ppm=200)
        return evaluate_channel(ch, network({P1: 300}), BALANCED).suggested.htlc_max_msat

    # 1,000M / 2^5 = 31.25M msat is the largest fraction <= 80 % of local from 39,063 sat
    # (31,250,400 msat) to 78,124 sat (62,499,200 msat): a few sats either way change nothing
    assert {htlc(x) for x in (39_063, 40_000, 49_990, 50_000, 50_010, 78_124)} == {31_250_000}
    # 39,062 sat: 31,249,600 < 31.25M -> 1,000M / 2^6 = 15,625,000
    assert htlc(39_062) == 15_625_000
    # 78,125 sat: 62,500,000 -> 1,000M / 2^4 = 62,500,000
    assert htlc(78_125) == 62_500_000
    # still depleted at 149,999 sat (ratio < 0.15): 119,999,200 -> 1,000M / 2^4 = 62.5M;
    # 150,000 sat is not depleted: 99 % of the capacity
    assert (htlc(149_999), htlc(150_000)) == (62_500_000, 990_000_000)
    # whole sats: 1,234,567,000 msat halved 5 times (integer) = 38,580,218 <= 48M (80 % of
    # 60,000 sat) -> 38,580,000
    assert htlc(60_000, capacity_sat=1_234_567) == 38_580_000
    # empty: halved down to 953 msat (1e9 // 2^20), 0 in whole sats -> htlc_min 1,000 msat
    assert htlc(0) == 1_000


def test_profiles_step_differently():
    # selling (10 forwards out, as many in: net flow 0), so a raise is not held
    ch = chan(local_sat=300_000, fee_ppm=200, peer_fee_ppm=50, windows=(TWO_WAY_DAY, TWO_WAY_WEEK))
    n = network({P1: 1000})
    # targets 1000 x 3 ** 0.4 = 1552, 1000 x 4 ** 0.4 = 1741, 1000 x 6 ** 0.4 = 2048
    # steps: ceil(200 x 1.15) = 230, ceil(200 x 1.25) = 250, ceil(200 x 1.5) = 300
    got = {
        p.name: (
            evaluate_channel(ch, n, p).suggested.target_fee_ppm,
            evaluate_channel(ch, n, p).suggested.fee_ppm,
        )
        for p in (CONSERVATIVE, BALANCED, AGGRESSIVE)
    }
    assert got == {"conservative": (1552, 230), "balanced": (1741, 250), "aggressive": (2048, 300)}
    # down (idle saturated, floor 1): targets 200 x 0.985 x 3 ** -0.9 / 4 ** -0.9 / 6 ** -0.9
    # = 73 / 57 / 39; one step: max(target, 1, floor(1000 x 0.90 / 0.85 / 0.75))
    down = {
        p.name: evaluate_channel(saturated(1000), network({P1: 200}), p).suggested.fee_ppm
        for p in (CONSERVATIVE, BALANCED, AGGRESSIVE)
    }
    assert down == {"conservative": 900, "balanced": 850, "aggressive": 750}


def test_conservative_deadband_ignores_what_aggressive_acts_on():
    # target 500 at ratio 0.5; fee 440: gap 60 / 440 = 13.6 % -> inside 20 %, outside 7 %
    # (7 forwards out this week, 1 in the last day: enough to raise on)
    ch = chan(
        local_sat=500_000,
        fee_ppm=440,
        windows=(
            FlowWindow(
                1, forwards_out=1, forwards_in=1, volume_out_msat=10**6, volume_in_msat=10**6
            ),
            FlowWindow(
                7, forwards_out=7, forwards_in=7, volume_out_msat=10**7, volume_in_msat=10**7
            ),
        ),
    )
    n = network({P1: 500})
    kept = evaluate_channel(ch, n, CONSERVATIVE)
    assert (kept.decision, kept.suggested.target_fee_ppm) == (Decision.NO_ACTION, 500)
    assert "fee 440 ppm is within 20% of the target 500 ppm" in kept.reasons
    # min(500, ceil(440 x 1.5) = 660) = 500
    raised = evaluate_channel(ch, n, AGGRESSIVE)
    assert (raised.decision, raised.suggested.fee_ppm) == (Decision.INCREASE_FEES, 500)


def test_zero_fee_channel_can_be_raised():
    # 0 ppm is common; x (1 + step) of 0 is still 0, the raise must still move the fee
    ch = chan(local_sat=300_000, fee_ppm=0)
    rec = evaluate_channel(ch, network({P1: 300}), BALANCED)
    assert rec.decision is Decision.INCREASE_FEES
    assert rec.suggested.fee_ppm > 0


def test_idle_rule_does_not_flip_a_raise_at_the_low_ratio():
    # No outbound forwards, fee far below the model. The idle rule starts above the low ratio
    # 0.15, with an idle share of 0 there. Exactly at 0.15 a channel draining fast (balance
    # drift -100M msat a day, 150M local: empty in 1.5 days < 2) gets the fast raise; one msat
    # more local balance must not turn that into a cut.
    ch = chan(
        local_sat=150_000,
        fee_ppm=100,
        peer_fee_ppm=0,
        windows=(IDLE_WEEK,),
        balance_trend_msat_per_day=-100_000_000,
    )
    n = network({P1: 300}, median_fee_ppm=20)
    at = evaluate_channel(ch, n, BALANCED)
    above = evaluate_channel(
        replace(ch, local_msat=ch.local_msat + 1, remote_msat=ch.remote_msat - 1), n, BALANCED
    )
    # at 0.15: 300 x 4 ** 0.7 (2.63902) x (1 - 0.5 x 30M / 1,000M) = 779.8 -> 780; floor
    # (nothing out) prior 1 x (0 + 20) = 20. Urgent, so not held for want of forwards:
    # min(780, ceil(100 x 2)) = 200
    assert (at.decision, at.suggested.fee_ppm, at.suggested.target_fee_ppm) == (
        Decision.INCREASE_FEES,
        200,
        780,
    )
    assert "draining: empty in 1.5 days at this pace, fast raise" in at.reasons
    # one msat above: idle share 1e-9 / 0.7, the target is held at 100 x (1 - 0.15 x 1.4e-9)
    # -> 100: no move, no cut
    assert (above.decision, above.suggested.fee_ppm, above.suggested.target_fee_ppm) == (
        Decision.NO_ACTION,
        100,
        100,
    )
    assert any("no outbound forwards this week while liquidity is idle" in r for r in above.reasons)


# -- properties -----------------------------------------------------------------------------

fees = st.integers(0, 10_000)


@st.composite
def policies(draw, required: bool = False) -> RoutingPolicy | None:
    if not required and draw(st.integers(0, 4)) == 0:
        return None
    inbound = draw(st.booleans())
    return RoutingPolicy(
        base_fee_msat=draw(st.integers(0, 5_000)),
        fee_rate_ppm=draw(fees),
        cltv_delta=80,
        htlc_min_msat=draw(st.integers(0, 1_000_000)),
        htlc_max_msat=draw(st.integers(1_000_000, 10**11)),
        inbound_base_fee_msat=0 if inbound else None,
        inbound_fee_rate_ppm=draw(st.integers(-500, 0)) if inbound else None,
    )


@st.composite
def windows(draw, capacity_msat: int) -> dict[int, FlowWindow]:
    out: dict[int, FlowWindow] = {}
    prev = FlowWindow(0)
    idle_week = draw(st.integers(0, 3)) == 0  # no forwards out this week: the idle rule
    for days in (1, 7, 30):
        f_out = 0 if idle_week and days < 30 else draw(st.integers(0, 40))
        f_in = draw(st.integers(0, 40))
        v_out = f_out * draw(st.integers(1_000, max(1_000, capacity_msat // 4)))
        v_in = f_in * draw(st.integers(1_000, max(1_000, capacity_msat // 4)))
        prev = FlowWindow(
            days,
            forwards_out=prev.forwards_out + f_out,
            forwards_in=prev.forwards_in + f_in,
            volume_out_msat=prev.volume_out_msat + v_out,
            volume_in_msat=prev.volume_in_msat + v_in,
            fees_msat=prev.fees_msat + v_out * draw(st.integers(0, 3_000)) // 1_000_000,
            failed_out=prev.failed_out + draw(st.integers(0, 10)),
            refill_cost_msat=prev.refill_cost_msat + draw(st.sampled_from([0, 0, 1_000, 100_000])),
        )
        out[days] = prev
    return out


@st.composite
def profiles(draw) -> Profile:
    if draw(st.booleans()):
        return draw(st.sampled_from(list(BUILTIN.values())))
    lo = draw(st.integers(0, 100))
    return profile_from_dict(
        {
            "base": draw(st.sampled_from(sorted(BUILTIN))),
            "name": "custom",
            "min_fee_ppm": lo,
            "max_fee_ppm": draw(st.integers(max(1, lo), 8_000)),
            "refill_margin": draw(st.floats(0, 2)),
            "min_fee_delta_ppm": draw(st.integers(0, 20)),
        }
    )


@st.composite
def scenarios(draw, require_policy: bool = False):
    p = draw(profiles())
    capacity = draw(st.integers(20_000, 100_000_000))
    total = draw(st.integers(capacity * 900, capacity * 1000))
    # Often right at a threshold of the profile, where a discontinuity would show.
    near = draw(st.sampled_from([None, p.target_ratio, p.low_ratio, p.high_ratio]))
    if near is None:
        local = draw(st.integers(0, total))
    else:
        local = min(total, max(0, round(total * near) + draw(st.integers(-1, 1))))
    ch = ChannelMetrics(
        channel_id="800000x1x0",
        peer_id=P1,
        peer_alias="peer",
        capacity_sat=capacity,
        local_msat=local,
        remote_msat=total - local,
        active=draw(st.booleans()),
        age_days=draw(st.floats(0, 1_000)),
        local_policy=draw(policies(required=require_policy)),
        remote_policy=draw(policies()),
        windows=draw(windows(capacity * 1000)),
        uptime_ratio=draw(st.none() | st.floats(0, 1)),
        disconnects_7d=draw(st.none() | st.integers(0, 20)),
        policy_changes_30d=draw(st.integers(0, 30)),
        balance_trend_msat_per_day=draw(st.floats(-capacity * 500.0, capacity * 500.0)),
    )
    peers = {}
    if draw(st.booleans()):
        peers[P1] = PeerInfo(
            channels=draw(st.integers(1, 3_000)),
            capacity_sat=draw(st.integers(20_000, 10**10)),
            competitor_fee_ppm=draw(st.none() | fees),
            competitor_count=draw(st.integers(0, 500)),
            betweenness=draw(st.none() | st.floats(0, 0.25)),
        )
    n = NetworkContext(
        graph_available=bool(peers),
        median_fee_ppm=draw(st.integers(0, 2_000)),
        median_channels=draw(st.integers(1, 20)),
        peers=peers,
        onchain_feerate_sat_vb=draw(st.integers(1, 300)),
    )
    return ch, n, p


def documented_floor(ch: ChannelMetrics, n: NetworkContext, p: Profile) -> int:
    """The floor as docs/ENGINE.md defines it, written out independently of the engine."""
    week = ch.window(7)
    full = refill_cost_ppm(ch, n) * p.refill_margin  # ppm, and the outflow (sat) trusted fully
    prior = min(1.0, max(0.0, (p.target_ratio - ch.local_ratio) / (p.target_ratio - p.low_ratio)))
    out, back = week.volume_out_msat, week.volume_in_msat
    share = min(1.0, max(0.0, (out - back) / out)) if out else prior
    weight = min(1.0, out / (full * 1000)) if full > 0 else 1.0
    return max(p.min_fee_ppm, round(full * (weight * share + (1 - weight) * prior)))


SETTINGS = settings(max_examples=100, deadline=None)
FEE_DECISIONS = (Decision.INCREASE_FEES, Decision.DECREASE_FEES)


def direction(rec, ch: ChannelMetrics) -> int:
    """+1 raise, -1 cut, 0 keep: what the suggestion does to our fee, whatever the label
    (a REBALANCE recommendation may carry a fee change too)."""
    if rec.decision is Decision.CLOSE_CHANNEL or rec.suggested.fee_ppm is None:
        return 0
    return (rec.suggested.fee_ppm > ch.fee_ppm) - (rec.suggested.fee_ppm < ch.fee_ppm)


def scarce(ch: ChannelMetrics, p: Profile) -> bool:
    """Depleted, and forwards failed on it for lack of balance this week."""
    return ch.local_ratio < p.low_ratio and ch.window(7).failed_out > 0


def scarcity_step(ch: ChannelMetrics, p: Profile) -> int:
    """The one step a scarce channel is raised by whatever its target (docs/ENGINE.md, "Step
    and hysteresis"): x (1 + max_step_up), at least the smallest change worth an update."""
    new = min(p.max_fee_ppm, math.ceil(ch.fee_ppm * (1 + p.max_step_up)))
    return max(new, ch.fee_ppm + max(1, p.min_fee_delta_ppm))


def is_scarcity_raise(rec, ch: ChannelMetrics, n: NetworkContext, p: Profile) -> bool:
    """The raise of a scarce channel whose target is not above its fee: the one raise that
    may go past the target."""
    return (
        direction(rec, ch) == 1
        and scarce(ch, p)
        and fee_target([ch], n, p).target_ppm <= ch.fee_ppm
        and rec.suggested.fee_ppm == scarcity_step(ch, p)
    )


@SETTINGS
@given(scenarios())
def test_evaluation_is_deterministic_and_bounded(s):
    ch, n, p = s
    rec = evaluate_channel(ch, n, p)
    assert rec == evaluate_channel(ch, n, p)
    assert 0.0 <= rec.confidence <= 1.0
    assert 0.0 <= rec.composite <= 100.0
    t = fee_target([ch], n, p)
    floor = documented_floor(ch, n, p)
    assert t.floor_ppm == floor
    # never above the whole refill cost, and with no flow at all: all of it when depleted,
    # none from the target ratio up
    full = refill_cost_ppm(ch, n) * p.refill_margin
    assert p.min_fee_ppm <= floor <= max(p.min_fee_ppm, round(full))
    week = ch.window(7)
    if week.volume_out_msat == week.volume_in_msat == 0:
        if ch.local_ratio <= p.low_ratio:
            assert floor == max(p.min_fee_ppm, round(full))
        elif ch.local_ratio >= p.target_ratio:
            assert floor == p.min_fee_ppm
    assert p.min_fee_ppm <= t.target_ppm <= p.max_fee_ppm
    if rec.decision in FEE_DECISIONS:
        fee = rec.suggested.fee_ppm
        assert p.min_fee_ppm <= fee <= p.max_fee_ppm
        assert fee != ch.fee_ppm
        if rec.decision is Decision.DECREASE_FEES:
            assert fee < ch.fee_ppm
            # the admin's maximum wins over a refill cost above it
            assert fee >= min(floor, p.max_fee_ppm)
            assert fee >= t.target_ppm
        elif fee > t.target_ppm:
            # past the target only the scarcity raise: a depleted channel failing forwards,
            # its target not above its fee, one step up within the admin's maximum
            assert ch.fee_ppm < fee
            assert scarce(ch, p) and t.target_ppm <= ch.fee_ppm
            assert fee == scarcity_step(ch, p) <= p.max_fee_ppm
            assert rec.reasons[len(t.reasons)].startswith(
                f"raise {ch.fee_ppm} -> {fee} ppm: depleted, and {week.failed_out} forwards failed"
            )
        else:
            assert ch.fee_ppm < fee <= t.target_ppm
        draining = t.days_to_empty is not None and t.days_to_empty < p.fast_raise_days
        if fee > ch.fee_ppm >= p.min_fee_ppm and not (draining or scarce(ch, p)):
            # a raise that is not urgent needs a week's worth of forwards to be measured by
            assert week.forwards_out >= RAISE_MIN_FORWARDS
    if (
        ch.fee_ppm is not None
        and p.min_fee_ppm <= ch.fee_ppm <= p.max_fee_ppm
        and scarce(ch, p)
        and t.target_ppm <= ch.fee_ppm
        and scarcity_step(ch, p) <= p.max_fee_ppm
        and (ch.raise_ceiling_ppm is None or scarcity_step(ch, p) < ch.raise_ceiling_ppm)
        and not ch.measuring
        and rec.decision is not Decision.CLOSE_CHANNEL
    ):
        # and it is never missed when it fits under the maximum (and a measured ceiling)
        assert rec.decision is Decision.INCREASE_FEES
        assert rec.suggested.fee_ppm == scarcity_step(ch, p)
    if rec.decision is Decision.NO_ACTION:
        assert rec.suggested.fee_ppm == ch.fee_ppm
    if rec.suggested.rebalance is not None:
        plan = rec.suggested.rebalance
        assert plan.estimated_cost_ppm < plan.max_fee_ppm
        assert plan.amount_sat > 0
        # at least 1 % of the capacity, never after refills that cost more than they earned,
        # and never costing more than the channel earned in 30 days (x safety) minus what
        # refills already cost
        assert plan.amount_sat * 1000 + 999 >= ch.capacity_msat // 100
        month = ch.window(30)
        assert month.refill_cost_msat <= month.fees_msat
        spent = month.refill_cost_msat * min(1.0, p.rebalance_horizon_days / 30)
        assert plan.max_cost_sat * 1000 <= month.fees_msat * p.rebalance_safety - spent + 1e-6


@SETTINGS
# Near the profile's maximum: a depleted channel failing forwards (target 352 ppm) is raised
# 4250 -> 5000 ppm by the scarcity step; at 5000 no further step fits under the maximum, and
# the fee must not then be cut back towards the target (the next scarcity raise would undo
# that cut, and so on every evaluation).
@example(
    (
        chan(local_sat=50_000, fee_ppm=4250, peer_fee_ppm=50, windows=(DEPLETED_WEEK,)),
        network({P1: 100}),
        BALANCED,
    )
)
@given(scenarios(require_policy=True))
def test_applying_the_suggestion_never_reverses_it(s):
    ch, n, p = s
    first = evaluate_channel(ch, n, p)
    d1 = direction(first, ch)
    assume(d1 != 0)
    applied = replace(
        ch, local_policy=replace(ch.local_policy, fee_rate_ppm=first.suggested.fee_ppm)
    )
    second = evaluate_channel(applied, n, p)
    assert direction(second, applied) != -d1, (first.reasons, second.reasons)


@SETTINGS
@given(
    scenarios(require_policy=True), st.sampled_from([1, -1]), st.sampled_from(["bal", "out", "in"])
)
def test_tiny_changes_never_flip_the_fee_direction(s, sign, what):
    ch, n, p = s
    if what == "bal":  # one msat moved between the sides
        moved = sign
        if ch.local_msat + moved < 0 or ch.remote_msat - moved < 0:
            moved = -moved
        other = replace(ch, local_msat=ch.local_msat + moved, remote_msat=ch.remote_msat - moved)
    else:  # one sat more or less forwarded this week (and so this month)
        field_name = "volume_out_msat" if what == "out" else "volume_in_msat"
        ws = dict(ch.windows)
        for days in (7, 30):
            w = ws[days]
            ws[days] = replace(w, **{field_name: max(0, getattr(w, field_name) + sign * 1000)})
        other = replace(ch, windows=ws)
    ra, rb = evaluate_channel(ch, n, p), evaluate_channel(other, n, p)
    a, b = direction(ra, ch), direction(rb, other)
    # A depleted channel failing forwards gets the scarcity raise; one msat more and it is
    # not depleted, but forwards still fail there below the target ratio: it holds.
    assert a * b != -1, (a, b)


@SETTINGS
@given(
    scenarios(require_policy=True),
    st.sampled_from(["target_ratio", "low_ratio", "high_ratio"]),
    st.booleans(),
)
def test_one_msat_across_a_ratio_threshold_never_flips(s, threshold, idle):
    """The balance thresholds of the profile (and the idle rule at the low ratio) must not
    turn a raise into a cut when one msat crosses them, the scarcity raise included: below
    the low ratio a channel failing forwards is raised a step whatever its target, above it
    and below the target ratio it holds."""
    ch, n, p = s
    if idle:  # no forwards out this week: the idle rule applies above the low ratio
        ws = {
            d: replace(w, forwards_out=0, volume_out_msat=0) if d < 30 else w
            for d, w in ch.windows.items()
        }
        ch = replace(ch, windows=ws)
    total = ch.local_msat + ch.remote_msat
    at = math.floor(total * getattr(p, threshold))
    seen = set()
    cut_ratios = []
    for local in (at - 1, at, at + 1, at + 2):
        if 0 <= local <= total:
            c = replace(ch, local_msat=local, remote_msat=total - local)
            rec = evaluate_channel(c, n, p)
            d = direction(rec, c)
            seen.add("scarcity" if is_scarcity_raise(rec, c, n, p) else d)
            if d == -1:
                cut_ratios.append(c.local_ratio)
    assert not {1, -1} <= seen and not {"scarcity", -1} <= seen, (seen, cut_ratios)


def test_the_reference_is_the_competitor_median_even_below_the_network_median():
    # 4 forwards out (too few for the demand anchor), as many in: ratio 0.5 and net flow 0, so
    # the target is the reference itself; the outflow all came back: floor 1
    week = FlowWindow(
        7, forwards_out=4, forwards_in=4, volume_out_msat=40_000_000, volume_in_msat=40_000_000
    )
    ch = chan(local_sat=500_000, fee_ppm=100, windows=(week,))
    cheap = fee_target([ch], network({P1: 10}, median_fee_ppm=100), BALANCED)
    dear = fee_target([ch], network({P1: 400}, median_fee_ppm=100), BALANCED)
    unknown = fee_target([ch], network({P1: None}, median_fee_ppm=100), BALANCED)
    assert (cheap.reference_ppm, cheap.target_ppm, cheap.floor_ppm) == (10, 10, 1)
    assert (dear.reference_ppm, dear.target_ppm) == (400, 400)
    assert (unknown.reference_ppm, unknown.target_ppm) == (100, 100)
    assert cheap.reasons[0] == "other channels into this peer charge 10 ppm (median)"
    assert dear.reasons[0] == "other channels into this peer charge 400 ppm (median)"
    assert unknown.reasons[0] == "competitors unknown: reference is the network median 100 ppm"
    # senders reach the peer for 10 ppm another way: 100 is cut one step, max(10, 1, 85) = 85
    rec = evaluate_channel(ch, network({P1: 10}, median_fee_ppm=100), BALANCED)
    assert (rec.decision, rec.suggested.fee_ppm) == (Decision.DECREASE_FEES, 85)


def test_unsold_liquidity_gets_its_small_idle_cut_inside_the_deadband():
    # 55 % local, nothing sold in a week: the idle rule caps the target one step below the
    # fee by the idle share, (0.55 - 0.15) / (0.85 - 0.15) = 0.571 of 15 %: 100 -> 91.4 ppm,
    # 9 % below, inside the 10 % deadband. The cut happens anyway (held, it never did).
    n = network({P1: 150})
    rec = evaluate_channel(chan(local_sat=550_000, fee_ppm=100), n, BALANCED)
    assert rec.decision is Decision.DECREASE_FEES and rec.suggested.fee_ppm == 91
    assert rec.suggested.target_fee_ppm == 91
    # Once it sells, the deadband holds small gaps again.
    week = FlowWindow(7, forwards_out=1, volume_out_msat=1_000_000, fees_msat=100)
    sold = evaluate_channel(chan(local_sat=550_000, fee_ppm=100, windows=(week,)), n, BALANCED)
    assert sold.decision is not Decision.DECREASE_FEES
