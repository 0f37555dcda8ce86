"""Price level trials: the daily schedule over the ladder of node-wide levels."""

from __future__ import annotations

from engine.level_trials import (
    FIRST_ORDER,
    WINDOW_DAYS,
    TrialDay,
    forward_value_msat,
    hopeful_msat,
    level_stats,
    next_level,
)


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
    # 100 % is best with 30 sat a day from six forwards; a forward has earned 0.05 sat per
    # level point (90 sat over 1,800 points). Within reach is 80 % of 30 sat: 24 sat.
    # 400 % sold one forward of 20 sat: one more day with one would make 20 a day, short.
    # 800 % sold one of 40 sat and 1600 % none: one more forward makes 40 a day for either.
    earn = {p: (0, 0) for p in FIRST_ORDER}
    earn.update({100: (30_000, 6), 400: (20_000, 1), 800: (40_000, 1)})
    days = explored(earn)  # 7 days: odd
    assert forward_value_msat(level_stats(days), 1600) == 80_000
    choice = next_level(days)
    assert choice.percent in (800, 1600)
    assert "tried again" in choice.reason
    # Even days keep the best so far: 800 % at 40 sat a day now.
    assert next_level([*days, TrialDay(800, 40_000, 1)]).percent == 800


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
