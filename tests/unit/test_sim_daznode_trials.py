"""Daznode as a simulated policy with price level trials: what auto mode does when the
profile's `level_trials` is on (engine/sim_daznode.py, engine/level_trials.py)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from engine.impact import ChannelFlow
from engine.level_trials import FIRST_ORDER, ChannelLevel, TrialDay, level_fee
from engine.metrics import ChannelMetrics
from engine.profiles import BUILTIN
from engine.sim_daznode import DaznodePolicy
from engine.sim_policy import PolicyActions, scaled_fee
from engine.validate import Bounds
from tests.unit.test_decide import (
    DEMAND_NETWORK,
    P1,
    chan,
    demand_channel,
    network,
    sources,
)
from tests.unit.test_sim_daznode import BUSY_DAY, BUSY_WEEK, Flows, raised

DAY = 86_400
NOW = 1_800_000_000
BALANCED = BUILTIN["balanced"]
OFF = replace(BALANCED, level_trials=False)


def earning(cid: str, start: int, end: int) -> ChannelFlow:
    """Every channel: two forwards earning 1 sat each per day asked for."""
    return ChannelFlow(2, 20_000_000, 2_000, end - start)


def applied(channels: list[ChannelMetrics], actions: PolicyActions) -> list[ChannelMetrics]:
    """The channels with the fees the policy set (as the simulator applies them)."""
    out = []
    for c in channels:
        s = actions.fees.get(c.channel_id)
        if s is not None and c.local_policy is not None:
            old = c.local_policy
            new = replace(
                old,
                fee_rate_ppm=s.fee_ppm,
                base_fee_msat=old.base_fee_msat if s.base_fee_msat is None else s.base_fee_msat,
                htlc_max_msat=old.htlc_max_msat if s.htlc_max_msat is None else s.htlc_max_msat,
            )
            c = replace(c, local_policy=new)
        out.append(c)
    return out


def on_day_two(p: DaznodePolicy) -> DaznodePolicy:
    """A policy whose first day at 100 % ended: its next pass starts day two."""
    assert p.trials is not None
    p.trials.day_started = NOW - DAY
    return p


def test_day_one_keeps_the_fees_and_day_two_moves_to_the_next_level():
    p = DaznodePolicy(BALANCED)
    assert p.name == "Daznode balanced"
    asked = []
    p.attach_flows(
        lambda cid, start, end: asked.append((cid, start, end)) or earning(cid, start, end)
    )
    ids = ("800000x1x0", "800000x2x0")
    channels = [chan(local_sat=500_000, fee_ppm=100, channel_id=cid) for cid in ids]
    first = p.decide(channels, network(), NOW)  # day one at 100 %: the engine's own fees
    assert p.percent == FIRST_ORDER[0] == 100 and p.days == []
    assert p.trials is not None
    own = {cid: p.trials.held[cid].own_ppm for cid in ids}
    assert {cid: s.fee_ppm for cid, s in first.fees.items()} == own  # no level on top
    channels = applied(channels, first)
    assert p.decide(channels, network(), NOW + 3600).fees == {}  # the hour after: cooldown
    assert p.percent == 100 and p.days == [] and p.trials.day_started == NOW  # still day one
    later = p.decide(channels, network(), NOW + DAY)  # day two: the next level, 50 %
    assert p.days == [TrialDay(100, 4_000, 4)]  # both channels' day at 100 %
    assert {(cid, NOW, NOW + DAY) for cid in ids} <= set(asked)
    assert p.percent == FIRST_ORDER[1] == 50
    assert {cid: s.fee_ppm for cid, s in later.fees.items()} == {
        cid: scaled_fee(own[cid], 50) for cid in ids
    }
    assert p.trials.held == {cid: ChannelLevel(own[cid], 50) for cid in ids}
    # The engine goes on seeing its own fee, not the day's.
    halved = applied(channels, later)
    p.trials.observe(halved, NOW)
    seen = p.trials.as_engine_sees(halved[0], NOW)
    assert seen.local_policy is not None and seen.local_policy.fee_rate_ppm == own[ids[0]]


def test_the_days_level_rolls_out_within_the_node_hourly_budget_largest_first():
    p = on_day_two(DaznodePolicy(BALANCED, Bounds(max_updates_per_node_per_hour=20)))
    p.attach_flows(earning)
    channels = [
        chan(
            capacity_sat=1_000_000 + i * 10_000,
            local_sat=500_000,
            fee_ppm=100 + i,
            channel_id=f"800000x{i}x0",
        )
        for i in range(1, 26)
    ]
    first = p.decide(channels, network(), NOW)
    assert p.percent == 50
    largest = {c.channel_id for c in channels[5:]}  # the 20 largest
    assert set(first.fees) == largest  # the budget left the engine nothing this hour
    assert all(
        first.fees[c.channel_id].fee_ppm == level_fee(c.fee_ppm or 0, 50, 0, 5000)
        for c in channels[5:]
    )
    channels = applied(channels, first)
    second = p.decide(channels, network(), NOW + 3600)  # the budget's hour has passed
    assert set(second.fees) == {c.channel_id for c in channels[:5]}
    assert {cid: s.fee_ppm for cid, s in second.fees.items()} == {
        c.channel_id: scaled_fee(100 + i, 50) for i, c in enumerate(channels[:5], start=1)
    }
    assert p.trials is not None
    assert all(held.percent == 50 for held in p.trials.held.values())


def test_a_level_takes_its_whole_step_at_once():
    p = DaznodePolicy(BALANCED)
    assert p.trials is not None
    ch = chan(local_sat=500_000, fee_ppm=100)
    p.trials.observe([ch], NOW)  # held at 100 %
    p.trials.percent, p.trials.day_started = 400, NOW - 3600
    actions = p.decide([ch], network(), NOW)
    assert actions.fees["800000x1x0"].fee_ppm == 400  # beyond the engine's step of 50 %


def test_the_engines_change_is_made_on_the_own_fee_and_scaled_by_the_held_level():
    # The engine alone raises a busy channel under dear competitors 100 -> 125 ppm.
    busy = chan(local_sat=500_000, fee_ppm=100, windows=(BUSY_WEEK, BUSY_DAY))
    alone = DaznodePolicy(OFF).decide([busy], network({P1: 1000}), NOW)
    assert alone.fees["800000x1x0"].fee_ppm == 125
    # Held at 200 % (own 100, 200 ppm on the node): the same step, doubled on the node.
    p = DaznodePolicy(BALANCED)
    assert p.trials is not None
    p.trials.percent, p.trials.day_started = 200, NOW - 3600
    p.trials.held["800000x1x0"] = ChannelLevel(100, 200)
    at_200 = replace(busy, local_policy=replace(busy.local_policy, fee_rate_ppm=200))
    actions = p.decide([at_200], network({P1: 1000}), NOW)
    assert actions.fees["800000x1x0"].fee_ppm == 250
    assert p.trials.held["800000x1x0"] == ChannelLevel(125, 200)
    (change,) = p.applied  # measured on the node's fees
    assert (change.before.fee_rate_ppm, change.after.fee_rate_ppm) == (200, 250)
    assert p.level_updates == set()


def test_the_engine_changes_no_fee_within_the_cooldown_before_the_next_level():
    busy = chan(local_sat=500_000, fee_ppm=100, windows=(BUSY_WEEK, BUSY_DAY))
    cooldown = Bounds().cooldown_seconds
    for into_the_day, changes in ((DAY - cooldown - 60, True), (DAY - cooldown + 60, False)):
        p = DaznodePolicy(BALANCED)
        assert p.trials is not None
        p.trials.day_started = NOW - into_the_day
        p.trials.held["800000x1x0"] = ChannelLevel(100, 100)
        actions = p.decide([busy], network({P1: 1000}), NOW)
        assert ("800000x1x0" in actions.fees) is changes, into_the_day
        assert bool(p.applied) is changes


def test_a_fee_set_by_someone_else_becomes_the_own_fee_at_its_level():
    p = DaznodePolicy(BALANCED)
    p.attach_flows(earning)
    assert p.trials is not None
    p.trials.percent, p.trials.day_started = 200, NOW - DAY  # day two at 200 % ends now
    p.trials.held["800000x1x0"] = ChannelLevel(100, 200)  # 200 ppm on the node...
    ch = chan(local_sat=500_000, fee_ppm=300)  # ...but the admin set 300
    actions = p.decide([ch], network(), NOW)
    # Own fee 150 (300 at 200 %); the next level (100 %, untried) is taken from it.
    assert p.days == [TrialDay(200, 2_000, 2)] and p.percent == 100
    assert actions.fees["800000x1x0"].fee_ppm == 150
    assert p.trials.held["800000x1x0"] == ChannelLevel(150, 100)
    assert p.level_updates == {("800000x1x0", NOW)}
    assert p.applied == []  # a level's step is not measured


def test_below_100_percent_a_refill_may_cost_less():
    channels = [demand_channel(peer_fee_ppm=20), *sources()]
    alone = DaznodePolicy(OFF, min_confidence=0.3).decide(channels, network(DEMAND_NETWORK), NOW)
    (order,) = alone.rebalances
    assert order.max_fee_ppm == 164  # the plan's budget (tests/unit/test_decide.py)
    for percent, cap in ((25, 41), (100, 164), (400, 164)):
        p = DaznodePolicy(BALANCED, min_confidence=0.3)
        assert p.trials is not None
        p.trials.observe(channels, NOW)  # held at their fees: the engine sees what it saw alone
        p.trials.percent, p.trials.day_started = percent, NOW - 3600
        (capped,) = p.decide(channels, network(DEMAND_NETWORK), NOW).rebalances
        assert capped == replace(order, max_fee_ppm=cap)


def test_with_trials_off_nothing_of_them_runs():
    p = DaznodePolicy(OFF)
    p.attach_flows(earning)
    on = DaznodePolicy(BALANCED)
    on.attach_flows(earning)
    quiet = [chan(local_sat=500_000, fee_ppm=100, channel_id=f"800000x{i}x0") for i in (1, 2)]
    first = p.decide(quiet, network(), NOW)
    assert first.fees  # the engine cuts the idle channels' fees...
    assert on.decide(quiet, network(), NOW) == first  # ...and on day one the trials do too
    channels = applied(quiet, first)
    later = p.decide(channels, network(), NOW + DAY)
    on_later = on.decide(channels, network(), NOW + DAY)
    assert on.percent == 50 and on_later.fees  # with them, day two halves every fee
    assert p.trials is None and p.days == [] and p.percent == 100 and p.level_updates == set()
    # Without them, day two is the engine's next step, one step at most.
    (fee,) = {s.fee_ppm for s in later.fees.values()}
    (was,) = {c.fee_ppm for c in channels}
    assert was is not None and was > fee >= math.floor(was * (1 - OFF.max_step_down))
    assert fee != scaled_fee(was, 50)


def measured_with_a_level_step_on_the_control(marked: bool) -> DaznodePolicy:
    """A raise 100 -> 125 measured two days on: it and the control channel both sold a
    tenth of what they did before; the control had a level step in the window."""
    p, change = raised(100, 125)
    p.attach_flows(Flows(change.at, {"800000x1x0": (10, 1), "800000x2x0": (10, 1)}))
    control_id = "800000x2x0"
    p.log = p.log.with_update(control_id, change.at + 3600)
    if marked:
        p.level_updates.add((control_id, change.at + 3600))
    assert p.trials is not None
    p.trials.day_started = NOW - 3600
    ch = chan(local_sat=500_000, fee_ppm=125, windows=(BUSY_WEEK, BUSY_DAY))
    control = chan(local_sat=500_000, fee_ppm=50, channel_id=control_id, peer_id="02" + "2" * 64)
    p.decide([ch, control], network({P1: 1000}), NOW)
    return p


def test_a_level_step_leaves_a_channel_fit_to_be_a_control():
    # The control fell as much: the raise did not hurt, it stays.
    p = measured_with_a_level_step_on_the_control(marked=True)
    assert p.rollbacks == 0 and p.lessons[0].outcome != "hurt"
    # Had the step counted as touching the control, no control: judged alone, rolled back.
    p = measured_with_a_level_step_on_the_control(marked=False)
    assert p.rollbacks == 1 and p.lessons[0].outcome == "hurt"


def test_a_rollback_never_undoes_a_later_level_step():
    p, change = raised(100, 125)
    p.attach_flows(Flows(change.at, {"800000x1x0": (10, 1), "800000x2x0": (10, 10)}))
    assert p.trials is not None
    p.trials.percent, p.trials.day_started = 200, NOW - 3600
    p.trials.held["800000x1x0"] = ChannelLevel(125, 200)  # stepped to 200 % since
    ch = chan(local_sat=500_000, fee_ppm=250, windows=(BUSY_WEEK, BUSY_DAY))
    control = chan(local_sat=500_000, fee_ppm=100, channel_id="800000x2x0", peer_id="02" + "2" * 64)
    actions = p.decide([ch, control], network({P1: 1000}), NOW)
    assert p.lessons[0].outcome == "hurt"  # judged, but not undone to 100 ppm on the node:
    assert p.rollbacks == 0
    # the engine steps back from what it learned on its own fee (125 -> 100), at the level.
    assert actions.fees["800000x1x0"].fee_ppm == 200
    assert p.trials.held["800000x1x0"] == ChannelLevel(100, 200)


def test_the_engine_reads_its_own_fee_history_not_the_level_steps():
    # A week idle at its own fee: a daily step must not read as a fee change (the idle cut
    # waits for a week at the same fee) nor count against the stability score.
    p = DaznodePolicy(BALANCED)
    assert p.trials is not None
    ch = replace(chan(local_sat=500_000, fee_ppm=100), fee_unchanged_days=10.0)
    p.trials.observe([ch], NOW)
    p.trials.percent = 50
    p.trials.rolled_out(ch.channel_id, NOW)
    stepped = replace(
        ch,
        local_policy=replace(ch.local_policy, fee_rate_ppm=50),
        fee_unchanged_days=0.5,
        policy_changes_30d=ch.policy_changes_30d + 1,
    )
    later = NOW + DAY // 2
    p.trials.observe([stepped], later)
    seen = p.trials.as_engine_sees(stepped, later)
    assert seen.fee_unchanged_days == pytest.approx(10.5)
    assert seen.policy_changes_30d == ch.policy_changes_30d
    assert seen.local_policy.fee_rate_ppm == 100
    p.trials.own_changed(ch.channel_id, 120, later)  # the engine's own change counts
    assert p.trials.as_engine_sees(stepped, later + DAY).fee_unchanged_days == 1.0
