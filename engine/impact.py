"""Did an applied fee change hurt? Pure functions that judge it, so Daznode can roll back.

The shell gives the changed channel's flow in a baseline window before the change (by default
the 7 days before) and in the evaluation window after it (by default 48 h), the same two
windows summed over control channels (channels whose policy changed in neither window; there
may be none), and the fee before and after. `evaluate_impact` returns an `ImpactVerdict`:
"improved", "neutral", "hurt" or "inconclusive", with the numbers and the reasons. Only
"hurt" rolls back.

Method (also in docs/ENGINE.md, "Measuring a change"):

1. Per-day rates: earnings E = fees / days and forwards F = forwards / days, baseline (b) and
   after (a).
2. Controls: control_ratio = the controls' earnings per day after / before; 1.0 when the
   controls have no baseline earnings (or there are none). It carries what the whole node saw
   without the change: a network-wide lull, a busy weekend.
3. expected_after = E_b x control_ratio; adjusted = E_a / expected_after - 1. When
   expected_after is 0 (nothing earned before, or the controls earned nothing after) the
   change cannot be judged: inconclusive. The decision is on earnings: a raise that loses
   half the forwards but earns twice per forward has adjusted = 0.
4. Confidence. Forward counts are Poisson; earnings are the count times the earnings per
   forward, whose spread is ignored (the count carries the noise). The null hypothesis is "no
   effect beyond the controls": earnings after = expected_after. At the earnings per forward
   after (observed, or, when nothing was forwarded, the baseline's scaled by fee_after /
   fee_before) that needs an after-count rate of rho x the baseline count rate, with
   rho = control_ratio x (earnings per forward before / after). The baseline count is itself
   a Poisson sample, so the test is the exact conditional test for two Poisson counts: given
   N = n_b + n_a, n_a ~ Binomial(N, p0) with p0 = x / (1 + x), x = rho x days_a / days_b.
   p = P(X <= n_a) when earnings fell, P(X >= n_a) when they rose (one-sided, exact, computed
   with the regularised incomplete beta function: math only, no normal approximation);
   confidence = 1 - p, and 0 when adjusted is exactly 0. n_b x x is reported as the number of
   forwards the evaluation window needed to keep the expected earnings.
5. The node as a whole: node_change = (changed channel + controls) earnings per day after /
   before - 1 (None when they earned nothing before). Senders move between our channels: a
   cut can take forwards from the controls, which lowers the control ratio and so inflates
   the cut's adjusted change (a raise the other way round). The verdict says so when it sees
   that pattern, and node_change shows whether the node gained at all; the outcome stays on
   the adjusted change (node_change has no control for a network-wide lull).
6. Outcome, in this order: inconclusive when the evaluation window is shorter than
   evaluation_hours, the baseline has fewer than min_baseline_forwards forwards, or
   expected_after is 0; hurt when adjusted < -max_earnings_drop and confidence >=
   confidence_required; improved when adjusted > max_earnings_drop with the same confidence;
   neutral otherwise. rollback is true exactly when the outcome is hurt.

Ratios are computed with exact fractions, so scaling every amount (or every span) by a
factor changes neither the adjusted change nor the confidence.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from fractions import Fraction
from typing import Any, Literal

from .metrics import FlowWindow

DAY_SECONDS = 86_400
HOUR_SECONDS = 3_600

Outcome = Literal["improved", "neutral", "hurt", "inconclusive"]
IMPROVED: Outcome = "improved"
NEUTRAL: Outcome = "neutral"
HURT: Outcome = "hurt"
INCONCLUSIVE: Outcome = "inconclusive"


class ImpactConfigError(ValueError):
    """Bad impact settings; the message starts with the offending field."""


# -- inputs ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChannelFlow:
    """Forwards out through a channel (or summed over channels) over one span of time."""

    forwards_out: int = 0
    volume_out_msat: int = 0
    fees_msat: int = 0  # earned on forwards leaving through the channel
    seconds: int = 0  # length of the span

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{f.name}: expected a whole number >= 0, got {value!r}")

    @classmethod
    def from_window(cls, window: FlowWindow) -> ChannelFlow:
        return cls(
            window.forwards_out, window.volume_out_msat, window.fees_msat, window.days * DAY_SECONDS
        )

    @property
    def days(self) -> float:
        return self.seconds / DAY_SECONDS


def sum_flows(flows: Iterable[ChannelFlow]) -> ChannelFlow:
    """The control channels' flows as one: counts and amounts add up, the span is shared (flows
    over different spans cannot be summed). No flows: an empty flow."""
    items = list(flows)
    if not items:
        return ChannelFlow()
    spans = {f.seconds for f in items}
    if len(spans) > 1:
        raise ValueError(f"seconds: flows cover different spans {sorted(spans)}")
    return ChannelFlow(
        sum(f.forwards_out for f in items),
        sum(f.volume_out_msat for f in items),
        sum(f.fees_msat for f in items),
        items[0].seconds,
    )


@dataclass(frozen=True, slots=True)
class ImpactInput:
    baseline: ChannelFlow  # the changed channel, before the change
    evaluation: ChannelFlow  # the changed channel, after it
    fee_before_ppm: int
    fee_after_ppm: int
    control_baseline: ChannelFlow = field(default_factory=ChannelFlow)
    control_evaluation: ChannelFlow = field(default_factory=ChannelFlow)

    def __post_init__(self) -> None:
        for name in ("baseline", "evaluation", "control_baseline", "control_evaluation"):
            if not isinstance(getattr(self, name), ChannelFlow):
                raise ValueError(f"{name}: expected a ChannelFlow")
        for name in ("fee_before_ppm", "fee_after_ppm"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name}: expected a whole number >= 0, got {value!r}")


# -- settings -------------------------------------------------------------------------------

_LIMITS: dict[str, tuple[float, float]] = {
    "evaluation_hours": (6, 720),
    "baseline_days": (1, 60),
    "max_earnings_drop": (0.01, 0.95),
    "min_baseline_forwards": (1, 100_000),
    "confidence_required": (0.5, 0.999),
}
_FLOAT_FIELDS = frozenset({"max_earnings_drop", "confidence_required"})


def _number(name: str, value: Any) -> Any:
    want_int = name not in _FLOAT_FIELDS
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ImpactConfigError(f"{name}: expected a number, got {value!r}")
    if not math.isfinite(value):
        raise ImpactConfigError(f"{name}: expected a finite number, got {value!r}")
    if want_int and not float(value).is_integer():
        raise ImpactConfigError(f"{name}: expected a whole number, got {value!r}")
    lo, hi = _LIMITS[name]
    if not lo <= value <= hi:
        raise ImpactConfigError(f"{name}: must be between {lo:g} and {hi:g}, got {value!r}")
    return int(value) if want_int else float(value)


@dataclass(frozen=True, slots=True)
class ImpactSettings:
    evaluation_hours: int = 48  # judge a change this long after it was applied
    baseline_days: int = 7  # the window before the change it is compared with
    max_earnings_drop: float = 0.3  # relative drop (beyond the controls) that is "hurt"
    min_baseline_forwards: int = 5  # fewer in the baseline: inconclusive, never a rollback
    confidence_required: float = 0.8  # for hurt (and improved)

    def __post_init__(self) -> None:
        for name in _LIMITS:
            _number(name, getattr(self, name))

    @classmethod
    def from_dict(cls, data: Any) -> ImpactSettings:
        """Settings from plain data; fields left out keep their defaults."""
        if not isinstance(data, Mapping):
            raise ImpactConfigError(f"impact: expected a mapping, got {type(data).__name__}")
        unknown = sorted(str(k) for k in set(data) - set(_LIMITS))
        if unknown:
            raise ImpactConfigError(f"{', '.join(unknown)}: unknown impact setting")
        return cls(**{name: _number(name, value) for name, value in data.items()})

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def due_for_evaluation(applied_at: int, now: int, settings: ImpactSettings) -> bool:
    """The evaluation window of a change applied at `applied_at` (epoch seconds) is complete."""
    return now - applied_at >= settings.evaluation_hours * HOUR_SECONDS


# -- verdict --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImpactVerdict:
    outcome: Outcome
    rollback: bool  # true exactly when the outcome is hurt
    baseline_earnings_msat_per_day: float
    after_earnings_msat_per_day: float
    expected_earnings_msat_per_day: float  # baseline x control_ratio
    baseline_forwards_per_day: float
    after_forwards_per_day: float
    control_ratio: float  # controls' earnings per day after / before; 1.0 without controls
    adjusted_change: float | None  # after / expected - 1; None when nothing was expected
    confidence: float  # 1 - p of the one-sided count test, in [0, 1]
    reasons: tuple[str, ...]
    # the changed channel and the controls together, per day after / before - 1 (None: the
    # node earned nothing before); stored verdicts from before it read as None
    node_change: float | None = None

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["reasons"] = list(self.reasons)
        return data


def evaluate_impact(inp: ImpactInput, settings: ImpactSettings | None = None) -> ImpactVerdict:
    """Judge a fee change from the flows before and after it (see the module docstring)."""
    s = settings if settings is not None else ImpactSettings()
    b, a = inp.baseline, inp.evaluation
    base_rate = _per_day(b.fees_msat, b.seconds)
    after_rate = _per_day(a.fees_msat, a.seconds)
    ratio, ratio_reason = _control_ratio(inp.control_baseline, inp.control_evaluation)
    expected = base_rate * ratio
    reasons = [
        f"Earned {_msat(base_rate)} msat/day before ({b.forwards_out} forwards in "
        f"{b.days:.1f} days at {inp.fee_before_ppm} ppm) and {_msat(after_rate)} msat/day "
        f"after ({a.forwards_out} forwards in {a.days:.1f} days at {inp.fee_after_ppm} ppm).",
        ratio_reason,
    ]

    blockers: list[str] = []
    if a.seconds < s.evaluation_hours * HOUR_SECONDS:
        blockers.append(
            f"the evaluation window is {a.seconds / HOUR_SECONDS:.1f} h, shorter than the "
            f"{s.evaluation_hours} h required"
        )
    if b.seconds == 0:
        blockers.append("there is no baseline window")
    if b.forwards_out < s.min_baseline_forwards:
        blockers.append(
            f"the baseline has {b.forwards_out} forwards, fewer than the "
            f"{s.min_baseline_forwards} needed"
        )
    if b.seconds and expected == 0:
        blockers.append(
            "nothing was expected: the channel earned nothing in the baseline"
            if base_rate == 0
            else "nothing was expected: the control channels earned nothing after the change"
        )

    adjusted: Fraction | None = None
    confidence = 0.0
    if b.seconds and a.seconds and expected > 0 and b.forwards_out > 0:
        adjusted = after_rate / expected - 1
        confidence, test_reason = _confidence(inp, ratio, adjusted)
        reasons.append(
            f"Expected {_msat(expected)} msat/day without the change; adjusted change "
            f"{float(adjusted):+.0%}."
        )
        reasons.append(test_reason)

    node_change, node_reasons = _node_view(inp, base_rate, after_rate, ratio, adjusted)
    reasons += node_reasons

    margin, required = s.max_earnings_drop, s.confidence_required
    outcome: Outcome
    if blockers:
        outcome = INCONCLUSIVE
        reasons.append("Inconclusive: " + "; ".join(blockers) + ". No rollback.")
    else:
        assert adjusted is not None  # every case without an expectation is a blocker
        sure = confidence >= required
        if adjusted < -Fraction(margin) and sure:
            outcome = HURT
            reasons.append(
                f"Hurt: earnings fell {float(-adjusted):.0%} beyond what the controls explain "
                f"(more than the {margin:.0%} allowed) with confidence {confidence:.3f} "
                f"(>= {required:.2f}): roll back to {inp.fee_before_ppm} ppm."
            )
        elif adjusted > Fraction(margin) and sure:
            outcome = IMPROVED
            reasons.append(
                f"Improved: earnings rose {float(adjusted):.0%} beyond what the controls "
                f"explain (more than {margin:.0%}) with confidence {confidence:.3f} "
                f"(>= {required:.2f})."
            )
        else:
            outcome = NEUTRAL
            if abs(adjusted) <= Fraction(margin):
                why = f"the change of {float(adjusted):+.0%} is within +/-{margin:.0%}"
            else:
                why = (
                    f"the change of {float(adjusted):+.0%} is beyond +/-{margin:.0%} but the "
                    f"confidence {confidence:.3f} is below the {required:.2f} required"
                )
            reasons.append(f"Neutral: {why}; the change is kept.")

    return ImpactVerdict(
        outcome=outcome,
        rollback=outcome == HURT,
        baseline_earnings_msat_per_day=float(base_rate),
        after_earnings_msat_per_day=float(after_rate),
        expected_earnings_msat_per_day=float(expected),
        baseline_forwards_per_day=float(_per_day(b.forwards_out, b.seconds)),
        after_forwards_per_day=float(_per_day(a.forwards_out, a.seconds)),
        control_ratio=float(ratio),
        adjusted_change=None if adjusted is None else float(adjusted),
        confidence=confidence,
        reasons=tuple(reasons),
        node_change=None if node_change is None else float(node_change),
    )


def _node_view(
    inp: ImpactInput,
    base_rate: Fraction,
    after_rate: Fraction,
    ratio: Fraction,
    adjusted: Fraction | None,
) -> tuple[Fraction | None, list[str]]:
    """The changed channel (its earnings per day before and after) and the controls
    together (module docstring, step 5)."""
    b, a = inp.baseline, inp.evaluation
    cb, ca = inp.control_baseline, inp.control_evaluation
    if not (b.seconds and a.seconds and cb.seconds and ca.seconds):
        return None, []  # no controls: the node's view is the channel's own
    before = base_rate + _per_day(cb.fees_msat, cb.seconds)
    if before == 0:
        return None, []
    after = after_rate + _per_day(ca.fees_msat, ca.seconds)
    change = after / before - 1
    out = [
        f"The node as a whole (this channel and the controls) earned {_msat(before)} msat/day "
        f"before and {_msat(after)} after: {float(change):+.0%}."
    ]
    cut = inp.fee_after_ppm < inp.fee_before_ppm
    raised = inp.fee_after_ppm > inp.fee_before_ppm
    if adjusted is not None and cut and adjusted > 0 and ratio < 1:
        out.append(
            "The controls earned less after this cut: senders may have moved from them to this "
            "channel, so part of its gain may be theirs."
        )
    elif adjusted is not None and raised and adjusted < 0 and ratio > 1:
        out.append(
            "The controls earned more after this raise: senders may have moved to them from "
            "this channel, so part of its loss may be their gain."
        )
    return change, out


def _per_day(amount: int, seconds: int) -> Fraction:
    return Fraction(amount * DAY_SECONDS, seconds) if seconds else Fraction(0)


def _msat(rate: Fraction) -> str:
    return f"{float(rate):,.0f}"


def _control_ratio(before: ChannelFlow, after: ChannelFlow) -> tuple[Fraction, str]:
    if before.seconds == 0 or before.fees_msat == 0 or after.seconds == 0:
        return Fraction(1), (
            "No control channels with baseline earnings: the control ratio is taken as 1.0."
        )
    ratio = _per_day(after.fees_msat, after.seconds) / _per_day(before.fees_msat, before.seconds)
    return ratio, (
        f"Control channels earned {_msat(_per_day(before.fees_msat, before.seconds))} "
        f"msat/day before and {_msat(_per_day(after.fees_msat, after.seconds))} msat/day "
        f"after: ratio {float(ratio):.2f}."
    )


def _confidence(inp: ImpactInput, ratio: Fraction, adjusted: Fraction) -> tuple[float, str]:
    """1 - p of the exact conditional test of the after-count against the count that would
    have kept the expected earnings (module docstring, step 4), and a sentence saying so."""
    b, a = inp.baseline, inp.evaluation
    n_b, n_a = b.forwards_out, a.forwards_out
    # Earnings per forward before / after: observed, or modelled from the fee ratio when
    # nothing was forwarded after the change (None: infinite, nothing earned per forward).
    per_forward: Fraction | None
    if n_a > 0:
        per_forward = Fraction(b.fees_msat * n_a, n_b * a.fees_msat) if a.fees_msat else None
        basis = "the observed earnings per forward"
    else:
        if inp.fee_before_ppm and inp.fee_after_ppm:
            per_forward = Fraction(inp.fee_before_ppm, inp.fee_after_ppm)
        elif inp.fee_before_ppm:  # a fee of 0 earns nothing per forward
            per_forward = None
        else:
            per_forward = Fraction(1)
        basis = "the baseline's earnings per forward scaled by the fee ratio"
    if adjusted == 0:
        return 0.0, "Earnings are exactly as expected: confidence 0."
    drop = adjusted < 0
    n = n_b + n_a
    if per_forward is None:
        p0, needed = Fraction(1), None
        p = (1.0 if n_a >= n else 0.0) if drop else 1.0
    else:
        x = ratio * per_forward * Fraction(a.seconds, b.seconds)
        p0, needed = x / (1 + x), n_b * x
        p = _binom_cdf(n_a, n, p0) if drop else _binom_sf(n_a, n, p0)
    confidence = min(1.0, max(0.0, 1.0 - p))
    if needed is None:
        return confidence, (
            f"Nothing is earned per forward at the new fee, so no number of forwards keeps "
            f"the expected earnings: confidence {confidence:.3f}."
        )
    return confidence, (
        f"At {basis}, keeping the expected earnings needed about {float(needed):.1f} forwards "
        f"in the evaluation window; {n_a} happened. A count this far "
        f"{'below' if drop else 'above'} occurs by chance with probability {p:.3g} (exact "
        f"conditional binomial test of the two Poisson counts, n = {n}, p0 = {float(p0):.3f}):"
        f" confidence {confidence:.3f}."
    )


# -- binomial tails, math only ----------------------------------------------------------------


def _binom_cdf(k: int, n: int, p: Fraction) -> float:
    """P(X <= k) for X ~ Binomial(n, p) = I_{1-p}(n - k, k + 1)."""
    if k < 0:
        return 0.0
    if k >= n or p <= 0:
        return 1.0
    if p >= 1:
        return 0.0
    return _betainc(n - k, k + 1, float(1 - p), float(p))


def _binom_sf(k: int, n: int, p: Fraction) -> float:
    """P(X >= k) for X ~ Binomial(n, p) = I_p(k, n - k + 1)."""
    if k <= 0:
        return 1.0
    if k > n or p <= 0:
        return 0.0
    if p >= 1:
        return 1.0
    return _betainc(k, n - k + 1, float(p), float(1 - p))


def _betainc(a: float, b: float, x: float, y: float) -> float:
    """Regularised incomplete beta I_x(a, b) for a, b > 0 and 0 < x < 1, y = 1 - x (passed
    separately so it keeps its precision): Lentz's continued fraction on the side where it
    converges fast, the symmetry I_x(a, b) = 1 - I_y(b, a) on the other."""
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(y)
    )
    if x < (a + 1) / (a + b + 2):
        value = math.exp(log_front) * _betacf(a, b, x) / a
    else:
        value = 1.0 - math.exp(log_front) * _betacf(b, a, y) / b
    return min(1.0, max(0.0, value))


def _betacf(a: float, b: float, x: float) -> float:
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    # Converges in O(sqrt(max(a, b))) steps on this side.
    for m in range(1, 200 + 10 * math.isqrt(int(max(a, b)) + 1)):
        m2 = 2 * m
        for aa in (
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            break
    return h
