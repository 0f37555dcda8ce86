"""What measured changes teach the engine: limits, the latest verdict, and the steps taken."""

from __future__ import annotations

from engine.decide import Decision, evaluate_channel
from engine.lessons import LESSON_DAYS, Lesson, latest, learned, with_lessons
from engine.metrics import FlowWindow, MeasuredChange
from tests.unit.test_decide import BALANCED, P1, chan, network

DAY = 86400
NOW = 1_800_000_000
WEEK = FlowWindow(7, forwards_out=35, volume_out_msat=350_000_000)
DAY_W = FlowWindow(1, forwards_out=5, volume_out_msat=50_000_000)


def lesson(before: int, after: int, adjusted: float | None, outcome: str = "neutral", age=1):
    return Lesson("800000x1x0", before, after, adjusted, outcome, NOW - age * DAY)


def test_limits_come_from_changes_that_earned_less_within_the_memory():
    lessons = [
        lesson(100, 150, -0.1),  # a raise that earned less: no raise to 150 or more
        lesson(100, 200, -0.5, "hurt"),
        lesson(100, 80, -0.2),  # a cut that earned less: no cut to 80 or less
        lesson(100, 120, 0.3, "improved"),  # paid: no limit
        lesson(100, 110, -0.9, "inconclusive"),  # too little data: no lesson
        lesson(100, 90, -0.9, age=LESSON_DAYS + 1),  # forgotten
    ]
    assert learned(lessons, NOW) == {"800000x1x0": (150, 80)}
    last = latest(lessons, NOW)["800000x1x0"]
    assert last == MeasuredChange(100, 120, 0.3)  # the newest conclusive one (ties: last)


def test_after_a_raise_that_paid_one_more_step_and_after_one_that_did_not_back():
    ch = chan(local_sat=500_000, fee_ppm=120, windows=(WEEK, DAY_W))
    (paid,) = with_lessons([ch], set(), [lesson(100, 120, 0.3, "improved")], NOW)
    rec = evaluate_channel(paid, network({P1: 100}), BALANCED)
    assert rec.decision is Decision.INCREASE_FEES and rec.suggested.fee_ppm == 150
    assert rec.confidence >= 0.5 and "one more step" in rec.reasons[-1]
    (lost,) = with_lessons([ch], set(), [lesson(100, 120, -0.2)], NOW)
    rec = evaluate_channel(lost, network({P1: 1000}), BALANCED)
    assert rec.decision is Decision.DECREASE_FEES and rec.suggested.fee_ppm == 100
    assert "earned 20% less: back" in rec.reasons[-1]
    # While a change is measured, nothing moves (one experiment at a time).
    (busy,) = with_lessons([ch], {"800000x1x0"}, [], NOW)
    rec = evaluate_channel(busy, network({P1: 1000}), BALANCED)
    assert rec.decision is Decision.NO_ACTION and "being measured" in rec.reasons[-1]


def test_a_cut_that_paid_goes_on_and_one_that_did_not_comes_back():
    # Two-way traffic: nothing to buy back, so the refill-cost floor does not hold the cut.
    week = FlowWindow(
        7, forwards_out=35, forwards_in=35, volume_out_msat=350_000_000, volume_in_msat=350_000_000
    )
    ch = chan(local_sat=800_000, fee_ppm=80, windows=(week, DAY_W))
    (paid,) = with_lessons([ch], set(), [lesson(100, 80, 0.25, "improved")], NOW)
    rec = evaluate_channel(paid, network({P1: 100}), BALANCED)
    assert rec.decision is Decision.DECREASE_FEES and rec.suggested.fee_ppm == 68
    (lost,) = with_lessons([ch], set(), [lesson(100, 80, -0.1)], NOW)
    rec = evaluate_channel(lost, network({P1: 100}), BALANCED)
    assert rec.decision is Decision.INCREASE_FEES and rec.suggested.fee_ppm == 100
