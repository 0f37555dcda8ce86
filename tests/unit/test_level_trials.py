"""Price level trials: the daily schedule over the ladder of node-wide levels."""

from __future__ import annotations

import pytest

from engine.level_trials import (
    FIRST_ORDER,
    WINDOW_DAYS,
    ChannelLevel,
    TrialDay,
    engine_quiet_from,
    engine_waits,
    forward_value_msat,
    held_level,
    hopeful_msat,
    level_fee,
    level_stats,
    next_level,
    own_fee,
    rebalance_fee_cap,
)

DAY = 86_400
NOW = 1_800_000_000


def explored(earn: dict[int, tuple[int, int]]) -> list[TrialDay]:
    """One day at each level in the first order: (fees msat, forwards) per level."""
    return [TrialDay(p, *earn[p]) for p in FIRST_ORDER]


def test_each_level_is_tried_once_nearest_first():
    days: list[TrialDay] = []
    seen = []
    for _ in FIRST_ORDER:
        choice = next_level(days)
        assert "not tried yet" in choice.reason
        seen.append(choice.percent)
        days.append(TrialDay(choice.percent, 1_000, 1))
    assert seen == list(FIRST_ORDER)
    assert seen[0] == 100  # the first day keeps the node's fees


def test_after_the_ladder_the_best_level_is_kept_on_even_days():
    days = explored({p: (p * 100, 3) for p in FIRST_ORDER})  # earnings grow with the level
    days.append(TrialDay(1600, 160_000, 3))  # 8 days: even
    choice = next_level(days)
    assert choice.percent == 1600
    assert "the most a day so far" in choice.reason


def test_on_odd_days_a_level_one_forward_could_lift_is_tried_again():
    # Forwards have earned 0.05 sat per level point (90 sat over 1,800 points). 800 % is
    # best with 40 sat from one forward; within reach is 80 % of that, 32 sat. 100 % sold
    # six forwards for 30 sat: one more day with one forward would lower its mean. 1600 %
    # sold none: one forward there (80 sat) in two days makes 40 a day: tried again.
    earn = {p: (0, 0) for p in FIRST_ORDER}
    earn.update({100: (30_000, 6), 400: (20_000, 1), 800: (40_000, 1)})
    days = explored(earn)  # 7 days: odd
    assert forward_value_msat(level_stats(days), 1600) == 80_000
    choice = next_level(days)
    assert choice.percent == 1600
    assert "one forward more would make it 40 sat" in choice.reason
    assert "best (800 %, 40 sat a day)" in choice.reason
    # Even days keep the best so far.
    assert next_level([*days, TrialDay(1600, 0, 0)]).percent == 800


def test_a_level_with_many_forwards_is_judged_by_its_mean():
    # 200 % earned 83 % of the best from five forwards a day: one more day with one forward
    # would lower its mean, so it is not tried again: the best stays.
    earn = {p: (0, 0) for p in FIRST_ORDER}
    earn.update({400: (12_000, 5), 200: (10_000, 5)})
    choice = next_level(explored(earn))
    assert choice.percent == 400
    assert "the most a day so far" in choice.reason


def test_a_level_far_below_the_best_is_not_tried_again():
    earn = {p: (1_000, 1) for p in FIRST_ORDER}
    earn[50] = (100_000, 100)  # 50 % sold a hundred forwards; the others one each
    choice = next_level(explored(earn))  # odd day: runner-ups only if within reach
    assert choice.percent == 50
    assert "the most a day so far" in choice.reason


def test_a_day_without_forwards_at_a_high_level_is_weak_evidence():
    # One forward at 100 % earns 5 sat; at 1600 % about 80 sat. The day at 1600 % sold
    # nothing; the best level (100 %) earns 30 sat a day: one forward at 1600 % in two days
    # would beat it, so 1600 % is tried again.
    earn = {p: (0, 0) for p in FIRST_ORDER}
    earn[100] = (30_000, 6)
    days = explored(earn)
    stats = level_stats(days)
    assert forward_value_msat(stats, 1600) == 80_000
    (top,) = [s for s in stats if s.percent == 1600]
    assert hopeful_msat(top, stats) == 40_000
    choice = next_level(days)
    assert choice.percent == 1600
    assert "tried again" in choice.reason


def test_without_any_forward_nothing_is_hoped_for():
    days = explored({p: (0, 0) for p in FIRST_ORDER})
    assert forward_value_msat(level_stats(days), 400) == 0
    choice = next_level(days)  # an odd day, but no level is worth trying again
    assert choice.percent == 100  # all equal: the node's own fees


def test_days_older_than_the_window_are_forgotten():
    old = [TrialDay(25, 1_000_000, 50)] * 3  # 25 % was best, long ago
    recent = explored({p: (p * 10, 2) for p in FIRST_ORDER})
    recent += [TrialDay(1600, 16_000, 2)] * (WINDOW_DAYS - len(recent))
    stats = {s.percent: s for s in level_stats(old + recent)}
    assert stats[25].fees_msat == 250  # only the recent day at 25 %
    assert next_level(old + recent).percent == 1600


def test_level_stats_sum_per_level():
    days = [TrialDay(100, 3_000, 3), TrialDay(200, 5_000, 1), TrialDay(100, 1_000, 1)]
    (hundred, two_hundred) = level_stats(days)
    assert (hundred.percent, hundred.days, hundred.fees_msat, hundred.forwards) == (
        100,
        2,
        4_000,
        4,
    )
    assert hundred.mean_fees_msat == 2_000
    assert (two_hundred.days, two_hundred.mean_fees_msat) == (1, 5_000)


def test_a_level_tried_before_the_window_only_is_a_runner_up_not_new():
    # After the ladder, four weeks at 800 %, which sells a forward of 8 sat every other day.
    days = explored({p: (p * 10, 1) for p in FIRST_ORDER})
    days += [TrialDay(800, 8_000, 1), TrialDay(800, 0, 0)] * (WINDOW_DAYS // 2)
    stats = {s.percent: s for s in level_stats(days)}
    assert (stats[1600].days, stats[1600].mean_fees_msat) == (0, 0)  # left the window
    # Not explored again in a row: on even days the best stays...
    assert len(days) % 2 == 1
    best_day = next_level([*days, TrialDay(800, 8_000, 1)])
    assert best_day.percent == 800
    # ...on odd days a level left the window is hoped for at one forward's worth: 1,600 %
    # at 16 sat against 800 %'s 4 sat a day.
    choice = next_level(days)
    assert choice.percent == 1600
    assert "over 0 days" in choice.reason and "tried again" in choice.reason


def test_a_bad_day_or_window_is_refused():
    for bad in ((0, 1, 1), (100, -1, 0), (100, 0, -1)):
        with pytest.raises(ValueError):
            TrialDay(*bad)
    with pytest.raises(ValueError):
        level_stats([], window=0)


# -- the level on each channel ---------------------------------------------------------------


def test_level_fee_scales_and_stays_in_range():
    assert level_fee(400, 200, 0, 5000) == 800
    assert level_fee(3, 25, 0, 5000) == 1  # 0.75 rounds half up
    assert level_fee(400, 1600, 0, 5000) == 5000  # the range's top
    assert level_fee(2, 25, 1, 5000) == 1  # the range's bottom


def test_own_fee_takes_the_level_back_out():
    assert own_fee(800, 200) == 400
    assert own_fee(38, 25) == 152
    assert own_fee(0, 50) == 0
    for own in range(0, 300, 7):
        for percent in (25, 50, 100, 200, 1600):
            fee = level_fee(own, percent, 0, 10**6)
            assert level_fee(own_fee(fee, percent), percent, 0, 10**6) == fee


def test_held_level_keeps_the_recorded_own_fee_while_the_node_has_its_fee():
    held = ChannelLevel(400, 1600)
    assert held_level(5000, held, 0, 5000) == held  # clipped at the top: still 400 own
    assert held_level(400, None, 0, 5000) == ChannelLevel(400, 100)  # new to the trials


def test_held_level_takes_a_fee_set_otherwise_out_of_its_level():
    # The admin (or the engine) set 300 ppm on a channel held at 200 %: own fee 150.
    assert held_level(300, ChannelLevel(400, 200), 0, 5000) == ChannelLevel(150, 200)


def test_held_level_finds_a_step_that_landed_unrecorded():
    held = ChannelLevel(150, 100)
    assert held_level(300, held, 0, 5000, today=200) == ChannelLevel(150, 200)
    assert held_level(150, held, 0, 5000, today=200) == held  # not stepped yet
    assert held_level(90, held, 0, 5000, today=200) == ChannelLevel(90, 100)  # set otherwise


def test_channel_level_rejects_nonsense():
    with pytest.raises(ValueError):
        ChannelLevel(-1, 100)
    with pytest.raises(ValueError):
        ChannelLevel(10, 0)


def test_a_refill_budget_shrinks_with_the_level_below_100_percent():
    assert rebalance_fee_cap(800, ChannelLevel(100, 25)) == 200
    assert rebalance_fee_cap(800, ChannelLevel(100, 400)) == 800  # never above the plan's
    assert rebalance_fee_cap(800, None) == 800


def test_the_engine_pauses_for_the_cooldown_before_the_next_step():
    start, hour = 1_800_000_000, 3600
    assert engine_quiet_from(start, 6 * hour) == start + 18 * hour
    assert engine_quiet_from(start, 0) == start + 24 * hour  # no cooldown: no pause
    assert engine_quiet_from(start, 30 * 24 * hour) == start + 12 * hour  # half a day at most
    assert not engine_waits(start, start + 18 * hour - 1, 6 * hour)
    assert engine_waits(start, start + 18 * hour, 6 * hour)
    assert not engine_waits(None, start, 6 * hour)  # trials not running
