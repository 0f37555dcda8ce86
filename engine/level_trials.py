"""Price level trials: which multiple of the node's fees earns the most, tried on whole days.

The engine sets each channel's fee relative to the others (competitors, balance, flow); the
level says how high the whole node prices. One level for the whole node, because a sender
that reaches us takes our cheapest way on: a trial on one channel sees its traffic move to
our other channels, not what the node earns. Whole days, alternating, because a week per
level cannot tell two levels apart within a month on a node that sells a few forwards a
day (docs/SIMULATION.md, "Price level trials").

The schedule is a small bandit over a ladder of levels: each level once, in an order that
starts near the current fees, then the level with the best mean daily earnings, every other
day a level whose mean one more day with one forward would bring within reach of the best
(a level that sells a forward every few days at a high price is not judged by one empty day;
one that sold many forwards a day is). Pure: the caller keeps the days and applies the level.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .sim_policy import scaled_fee

# The ladder, in percent of the engine's fees, in the order each level is first tried:
# nearest to the current fees first.
FIRST_ORDER = (100, 50, 200, 25, 400, 800, 1600)
RUNNER_UP_SHARE = 0.8  # tried again when one lucky day could bring it to this share of the best
WINDOW_DAYS = 28  # older days no longer describe the node's demand
DAY = 86400  # a trial day: one level from its start (the service and the simulator)


@dataclass(frozen=True, slots=True)
class TrialDay:
    percent: int  # the level in place that day
    fees_msat: int  # what the node earned in forwarding fees that day
    forwards: int  # how many forwards earned it

    def __post_init__(self) -> None:
        if self.percent <= 0 or self.fees_msat < 0 or self.forwards < 0:
            raise ValueError(f"not a trial day: {self}")


@dataclass(frozen=True, slots=True)
class LevelStats:
    percent: int
    days: int
    fees_msat: int
    forwards: int

    @property
    def mean_fees_msat(self) -> int:  # per day (0 for a level tried before the window only)
        return self.fees_msat // self.days if self.days else 0


@dataclass(frozen=True, slots=True)
class LevelChoice:
    percent: int
    reason: str


def level_stats(days: Sequence[TrialDay], window: int = WINDOW_DAYS) -> list[LevelStats]:
    """Per level ever tried: its days, earnings and forwards within the last `window` days
    (none for a level tried before them only)."""
    if window < 1:
        raise ValueError("window: at least one day")
    totals: dict[int, list[TrialDay]] = {day.percent: [] for day in days}
    for day in days[-window:]:
        totals[day.percent].append(day)
    return [
        LevelStats(p, len(v), sum(d.fees_msat for d in v), sum(d.forwards for d in v))
        for p, v in sorted(totals.items())
    ]


def forward_value_msat(stats: Sequence[LevelStats], percent: int) -> float:
    """What one forward earns at a level: the fee per forward seen so far, per level point,
    times the level (0 before the first forward)."""
    points = sum(s.forwards * s.percent for s in stats)
    return sum(s.fees_msat for s in stats) / points * percent if points else 0.0


def hopeful_msat(s: LevelStats, stats: Sequence[LevelStats]) -> float:
    """What a level's mean daily earnings would be after one more day that brought one
    forward. Below its mean when its days sold several forwards each (a mean of many
    forwards is already a fair guess), above it when they sold none or one: at a high level
    one forward is worth many days of the low ones, and a day without any says little."""
    return (s.fees_msat + forward_value_msat(stats, s.percent)) / (s.days + 1)


def next_level(
    days: Sequence[TrialDay],
    order: Sequence[int] = FIRST_ORDER,
    window: int = WINDOW_DAYS,
) -> LevelChoice:
    """The level for the next day, given every day so far, oldest first (the whole history:
    the runner-up days alternate with the best's by its length). A level tried only before
    the window counts as tried but unseen: one forward's worth of hope, a runner-up again."""
    stats = {s.percent: s for s in level_stats(days, window)}
    untried = [p for p in order if p not in stats]
    if untried:
        return LevelChoice(untried[0], f"level {untried[0]} %: not tried yet")
    seen = [s for s in stats.values() if s.days]
    if not seen:
        return LevelChoice(100, "no level tried within the window: the node's own fees")
    # Ties go to the level nearest the node's own fees (nothing sold anywhere: 100 %).
    best = max(seen, key=lambda s: (s.mean_fees_msat, -abs(math.log(s.percent / 100))))
    if len(days) % 2:
        reach = best.mean_fees_msat * RUNNER_UP_SHARE
        all_stats = list(stats.values())
        hope = {s.percent: hopeful_msat(s, all_stats) for s in all_stats}
        runners = [
            s for s in all_stats if s is not best and hope[s.percent] >= reach and hope[s.percent]
        ]
        if runners:
            pick = min(runners, key=lambda s: (s.days, -hope[s.percent]))
            return LevelChoice(
                pick.percent,
                f"level {pick.percent} %: {_sat(pick.mean_fees_msat)} a day over "
                f"{_days(pick.days)}; one forward more would make it "
                f"{_sat(round(hope[pick.percent]))}, close to the best ({best.percent} %, "
                f"{_sat(best.mean_fees_msat)} a day): tried again",
            )
    return LevelChoice(
        best.percent,
        f"level {best.percent} %: the most a day so far ({_sat(best.mean_fees_msat)} over "
        f"{_days(best.days)})",
    )


# -- the level on each channel ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChannelLevel:
    """A channel under level trials: the engine's own fee and the level its fee on the node
    was last set at (the node's fee is level_fee(own_ppm, percent))."""

    own_ppm: int
    percent: int

    def __post_init__(self) -> None:
        if self.own_ppm < 0 or self.percent <= 0:
            raise ValueError(f"not a channel level: {self}")


def level_fee(own_ppm: int, percent: int, lo: int, hi: int) -> int:
    """The node's fee for an own fee at a level, within the fee range [lo, hi]."""
    return min(hi, max(lo, scaled_fee(own_ppm, percent)))


def own_fee(fee_ppm: int, percent: int) -> int:
    """The own fee behind a node's fee at a level (rounded half up)."""
    return (fee_ppm * 100 + percent // 2) // percent


def held_level(
    fee_ppm: int, held: ChannelLevel | None, lo: int, hi: int, today: int | None = None
) -> ChannelLevel:
    """What a channel holds, given its fee on the node now. The recorded own fee while the
    node still has the fee it gives at its level (exact, even where the range clipped it),
    or at `today`'s level (its step landed but was not recorded: a crash in between); a fee
    set otherwise (the admin's, a rollback, the engine's change) is taken back out of the
    level it was set at. A channel new to the trials is at 100 %."""
    if held is None:
        return ChannelLevel(fee_ppm, 100)
    for percent in (held.percent, today):
        if percent and level_fee(held.own_ppm, percent, lo, hi) == fee_ppm:
            return ChannelLevel(held.own_ppm, percent)
    return ChannelLevel(own_fee(fee_ppm, held.percent), held.percent)


def engine_quiet_from(day_start: int, cooldown_seconds: int) -> int:
    """When the engine's fee changes stop until the next day's step. A change made within
    the cooldown before the step holds its channel at the old level into the new day, and
    a forward over it then credits the new level with the old level's price (one such
    forward decided a month's level in the simulator). So the engine changes fees in the
    first part of each day only: all but the cooldown, and at least half the day."""
    return day_start + DAY - min(cooldown_seconds, DAY // 2)


def engine_waits(day_start: int | None, now: int, cooldown_seconds: int) -> bool:
    """Whether the engine's fee changes wait for the next day's step (engine_quiet_from)."""
    return day_start is not None and now >= engine_quiet_from(day_start, cooldown_seconds)


def rebalance_fee_cap(max_fee_ppm: int, held: ChannelLevel | None) -> int:
    """A refill is worth what the channel sells for: below 100 % its fee budget shrinks too."""
    if held is None or held.percent >= 100:
        return max_fee_ppm
    return min(max_fee_ppm, scaled_fee(max_fee_ppm, held.percent))


def _sat(msat: int) -> str:
    return f"{msat // 1000:,} sat"


def _days(n: int) -> str:
    return "1 day" if n == 1 else f"{n} days"
