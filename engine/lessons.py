"""What measuring our own fee changes teaches the engine (engine/impact.py judges them).

A change whose evaluation window is still open is "being measured": the engine makes one
experiment at a time per channel. A measured change whose earnings came out below what the
untouched channels predicted (adjusted change < 0, even when not significant enough to roll
it back) marks a direction that did not pay: for `LESSON_DAYS` raises stay below the fee a
raise to which earned less, and cuts stay above the fee a cut to which earned less. The
latest verdict itself goes to the engine too (`last_measured`): it steps back from a change
that earned less and takes one more step after one that paid (engine/decide.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from .metrics import ChannelMetrics, MeasuredChange

LESSON_DAYS = 14
DAY = 86400


@dataclass(frozen=True, slots=True)
class Lesson:
    channel_id: str
    fee_before_ppm: int
    fee_after_ppm: int
    adjusted_change: float | None  # the verdict's earnings after vs expected, minus 1
    outcome: str  # improved | neutral | hurt | inconclusive
    evaluated_at: int


def learned(lessons: Iterable[Lesson], now: int) -> dict[str, tuple[int | None, int | None]]:
    """Per channel (raise ceiling, cut floor) from the lessons of the last LESSON_DAYS."""
    out: dict[str, tuple[int | None, int | None]] = {}
    for lesson in lessons:
        if now - lesson.evaluated_at > LESSON_DAYS * DAY or lesson.outcome == "inconclusive":
            continue
        if lesson.adjusted_change is None or lesson.adjusted_change >= 0:
            continue
        ceiling, floor = out.get(lesson.channel_id, (None, None))
        if lesson.fee_after_ppm > lesson.fee_before_ppm:
            ceiling = min(ceiling or lesson.fee_after_ppm, lesson.fee_after_ppm)
        elif lesson.fee_after_ppm < lesson.fee_before_ppm:
            floor = max(floor or lesson.fee_after_ppm, lesson.fee_after_ppm)
        out[lesson.channel_id] = (ceiling, floor)
    return out


def latest(lessons: Iterable[Lesson], now: int) -> dict[str, MeasuredChange]:
    """Per channel, the newest conclusive verdict of the last LESSON_DAYS."""
    newest: dict[str, Lesson] = {}
    for lesson in lessons:
        if now - lesson.evaluated_at > LESSON_DAYS * DAY or lesson.outcome == "inconclusive":
            continue
        if lesson.adjusted_change is None:
            continue
        seen = newest.get(lesson.channel_id)
        if seen is None or lesson.evaluated_at >= seen.evaluated_at:
            newest[lesson.channel_id] = lesson
    return {
        cid: MeasuredChange(x.fee_before_ppm, x.fee_after_ppm, float(x.adjusted_change or 0.0))
        for cid, x in newest.items()
    }


def with_lessons(
    metrics: list[ChannelMetrics], measuring: set[str], lessons: Iterable[Lesson], now: int
) -> list[ChannelMetrics]:
    lessons = list(lessons)
    limits = learned(lessons, now)
    last = latest(lessons, now)
    return [
        replace(
            m,
            measuring=m.channel_id in measuring,
            raise_ceiling_ppm=limits.get(m.channel_id, (None, None))[0],
            cut_floor_ppm=limits.get(m.channel_id, (None, None))[1],
            last_measured=last.get(m.channel_id),
        )
        for m in metrics
    ]
