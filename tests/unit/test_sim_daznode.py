"""Daznode as a simulated policy: the product's pipeline, its measurements and rollbacks."""

from __future__ import annotations

from dataclasses import replace

from engine.impact import ChannelFlow
from engine.lessons import LESSON_DAYS
from engine.metrics import FlowWindow
from engine.profiles import BUILTIN
from engine.sim_daznode import Applied, DaznodePolicy
from tests.unit.test_decide import P1, chan, network, policy

DAY = 86400
NOW = 1_800_000_000
BUSY_WEEK = FlowWindow(7, forwards_out=70, volume_out_msat=700_000_000, fees_msat=70_000)
BUSY_DAY = FlowWindow(1, forwards_out=10, volume_out_msat=100_000_000, fees_msat=10_000)


class Flows:
    """A forward log: `rates[channel]` = (forwards per day before the change, after it)."""

    def __init__(self, change_at: int, rates: dict[str, tuple[int, int]]) -> None:
        self.change_at, self.rates = change_at, rates

    def __call__(self, cid: str, start: int, end: int) -> ChannelFlow:
        before, after = self.rates.get(cid, (0, 0))
        rate = after if start >= self.change_at else before
        n = rate * (end - start) // DAY
        return ChannelFlow(n, n * 10_000_000, n * 1_000, end - start)


def raised(fee_before: int, fee_after: int) -> tuple[DaznodePolicy, Applied]:
    p = DaznodePolicy(BUILTIN["balanced"])
    applied = Applied("800000x1x0", NOW - 2 * DAY, policy(fee_before), policy(fee_after))
    p.applied.append(applied)
    p.log = p.log.with_update("800000x1x0", applied.at)
    return p, applied


def test_a_raise_that_hurt_is_rolled_back_and_not_repeated():
    p, applied = raised(100, 125)
    # Ten forwards a day before the raise, one after it; the control channel did not change.
    p.attach_flows(Flows(applied.at, {"800000x1x0": (10, 1), "800000x2x0": (10, 10)}))
    raised_ch = chan(local_sat=500_000, fee_ppm=125, windows=(BUSY_WEEK, BUSY_DAY))
    control = chan(local_sat=500_000, fee_ppm=100, channel_id="800000x2x0", peer_id="02" + "2" * 64)
    actions = p.decide([raised_ch, control], network({P1: 1000}), NOW)
    assert actions.fees["800000x1x0"].fee_ppm == 100  # back to the fee before
    assert p.rollbacks == 1
    (lesson,) = p.lessons
    assert (lesson.fee_before_ppm, lesson.fee_after_ppm, lesson.outcome) == (100, 125, "hurt")
    # Later the engine wants the same raise again (competitors charge 1,000 ppm): capped below
    # the price that earned less, and after the memory the raise is free again.
    later = NOW + DAY
    back = replace(raised_ch, local_policy=policy(100))
    actions = p.decide([back, control], network({P1: 1000}), later)
    fee = actions.fees.get("800000x1x0")
    assert fee is None or fee.fee_ppm < 125
    assert p.lessons[0].evaluated_at + LESSON_DAYS * DAY > later  # still remembered


def test_a_raise_that_earned_stays_and_the_next_waits_for_its_verdict():
    p, applied = raised(100, 125)
    p.attach_flows(Flows(applied.at, {"800000x1x0": (10, 10)}))  # same forwards, 25 % more fee
    ch = chan(local_sat=500_000, fee_ppm=125, windows=(BUSY_WEEK, BUSY_DAY))
    actions = p.decide([ch], network({P1: 1000}), NOW)
    assert p.rollbacks == 0 and p.lessons[0].adjusted_change >= 0
    # It paid: the engine takes one more step up (25 %), and that raise is now being measured.
    assert actions.fees["800000x1x0"].fee_ppm == 157
    assert p.applied[-1].after.fee_rate_ppm == 157


def test_without_a_forward_log_nothing_is_judged():
    p, _ = raised(100, 125)
    ch = chan(local_sat=500_000, fee_ppm=125, windows=(BUSY_WEEK, BUSY_DAY))
    p.decide([ch], network({P1: 1000}), NOW)
    assert p.rollbacks == 0 and p.applied  # kept until a lookup exists
