import math
from dataclasses import replace
from fractions import Fraction

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from engine.impact import (
    DAY_SECONDS,
    HOUR_SECONDS,
    HURT,
    IMPROVED,
    INCONCLUSIVE,
    NEUTRAL,
    ChannelFlow,
    ImpactConfigError,
    ImpactInput,
    ImpactSettings,
    _binom_cdf,
    _binom_sf,
    due_for_evaluation,
    evaluate_impact,
    sum_flows,
)
from engine.metrics import FlowWindow

D = DAY_SECONDS
# Controls steady: 50,000 msat/day before (350,000 in 7 days) and after (100,000 in 2 days).
CONTROLS_BEFORE = ChannelFlow(700, 700_000_000, 350_000, 7 * D)
CONTROLS_STEADY = ChannelFlow(200, 200_000_000, 100_000, 2 * D)


def flow(forwards, fee_per_forward_msat, days, amount_msat=1_000_000):
    return ChannelFlow(forwards, forwards * amount_msat, forwards * fee_per_forward_msat, days * D)


def binom_cdf_exact(k, n, p):
    return float(sum(Fraction(math.comb(n, i)) * p**i * (1 - p) ** (n - i) for i in range(k + 1)))


# -- hand-computed cases ------------------------------------------------------------------------


def test_raise_that_halves_forwards_but_keeps_earnings_is_not_rolled_back():
    # 500 -> 1000 ppm on 1,000-sat forwards: 500 then 1,000 msat per forward.
    # Before: 70 forwards in 7 days = 10/day, 35,000 msat = 5,000 msat/day.
    # After: 10 forwards in 2 days = 5/day (half), 10,000 msat = 5,000 msat/day.
    # Controls steady (ratio 1): expected 5,000/day, adjusted = 5,000 / 5,000 - 1 = 0.
    v = evaluate_impact(
        ImpactInput(
            flow(70, 500, 7), flow(10, 1000, 2), 500, 1000, CONTROLS_BEFORE, CONTROLS_STEADY
        )
    )
    assert v.outcome in (NEUTRAL, IMPROVED)
    assert not v.rollback
    assert v.baseline_forwards_per_day == pytest.approx(10)
    assert v.after_forwards_per_day == pytest.approx(5)
    assert v.baseline_earnings_msat_per_day == pytest.approx(5000)
    assert v.after_earnings_msat_per_day == pytest.approx(5000)
    assert v.control_ratio == 1.0
    assert v.adjusted_change == 0.0


def test_raise_that_kills_traffic_is_hurt_and_rolled_back():
    # 500 -> 1000 ppm. Before: 40 forwards in 7 days, 500 msat each = 20,000 msat
    # (2,857 msat/day). After: 0 forwards in 48 h. Controls steady: ratio 1, adjusted -100 %.
    # Test: at the new fee a forward earns 2x, so keeping earnings needs the count rate x 0.5:
    # x = 0.5 * 2/7 = 1/7, p0 = x / (1 + x) = 1/8; N = 40 + 0;
    # P(Bin(40, 1/8) <= 0) = (7/8)^40 = 0.004795 -> confidence 0.9952 >= 0.8.
    v = evaluate_impact(
        ImpactInput(flow(40, 500, 7), flow(0, 1000, 2), 500, 1000, CONTROLS_BEFORE, CONTROLS_STEADY)
    )
    assert v.outcome == HURT
    assert v.rollback
    assert v.adjusted_change == -1.0
    assert v.confidence == pytest.approx(1 - (7 / 8) ** 40)
    assert v.confidence == pytest.approx(0.99521, abs=1e-5)
    assert any("roll back to 500 ppm" in r for r in v.reasons)
    assert any("5.7 forwards" in r for r in v.reasons)  # 40 * 1/7 needed


def test_same_drop_during_network_wide_lull_is_not_hurt():
    # As above, but the controls fell 80 %: 50,000 -> 10,000 msat/day (20,000 in 2 days),
    # control ratio 0.2. Expected 2,857 * 0.2 = 571 msat/day; adjusted still -100 %, but
    # x = 0.2 * 0.5 * 2/7 = 1/35, p0 = 1/36; P(Bin(40, 1/36) = 0) = (35/36)^40 = 0.3243
    # -> confidence 0.676 < 0.8: a quiet network explains seeing no forward (1.1 needed).
    v = evaluate_impact(
        ImpactInput(
            flow(40, 500, 7),
            flow(0, 1000, 2),
            500,
            1000,
            CONTROLS_BEFORE,
            ChannelFlow(40, 40_000_000, 20_000, 2 * D),
        )
    )
    assert v.outcome != HURT
    assert not v.rollback
    assert v.control_ratio == pytest.approx(0.2)
    assert v.expected_earnings_msat_per_day == pytest.approx(20_000 / 7 * 0.2)
    assert v.confidence == pytest.approx(1 - (35 / 36) ** 40)
    assert v.confidence == pytest.approx(0.67594, abs=1e-5)


def test_thin_baseline_is_inconclusive_never_a_rollback():
    # 4 forwards in the baseline < min_baseline_forwards 5, even with nothing after.
    v = evaluate_impact(
        ImpactInput(flow(4, 500, 7), flow(0, 1000, 2), 500, 1000, CONTROLS_BEFORE, CONTROLS_STEADY)
    )
    assert v.outcome == INCONCLUSIVE
    assert not v.rollback
    assert any("4 forwards, fewer than the 5" in r for r in v.reasons)


def test_window_shorter_than_evaluation_hours_is_inconclusive():
    # The kill-traffic case after 24 h of the 48 required: it looks bad (confidence 0.94:
    # x = 0.5 * 1/7, p0 = 1/15, (14/15)^40 = 0.063) but is not judged yet.
    v = evaluate_impact(
        ImpactInput(
            flow(40, 500, 7),
            flow(0, 1000, 1),
            500,
            1000,
            CONTROLS_BEFORE,
            ChannelFlow(100, 100_000_000, 50_000, D),
        )
    )
    assert v.outcome == INCONCLUSIVE
    assert not v.rollback
    assert v.confidence == pytest.approx(1 - (14 / 15) ** 40)
    assert any("24.0 h, shorter than the 48 h" in r for r in v.reasons)


def test_cut_that_doubles_earnings_is_improved():
    # 1000 -> 500 ppm. Before: 35 forwards in 7 days at 1,000 msat = 5,000 msat/day.
    # After: 40 forwards in 2 days at 500 msat = 20,000 msat = 10,000 msat/day: adjusted +100 %.
    # Per forward earns half, so keeping earnings needs x = 2 * 2/7 = 4/7 (20 forwards),
    # p0 = 4/11; P(Bin(75, 4/11) >= 40) = 0.00199 -> confidence 0.998.
    v = evaluate_impact(
        ImpactInput(
            flow(35, 1000, 7), flow(40, 500, 2), 1000, 500, CONTROLS_BEFORE, CONTROLS_STEADY
        )
    )
    assert v.outcome == IMPROVED
    assert not v.rollback
    assert v.adjusted_change == pytest.approx(1.0)
    assert v.confidence == pytest.approx(0.998, abs=1e-3)
    # confidence = 1 - P(X >= 40) = P(X <= 39)
    assert v.confidence == pytest.approx(binom_cdf_exact(39, 75, Fraction(4, 11)))


def test_cut_that_brings_forwards_but_not_enough_earnings_is_hurt():
    # 1000 -> 400 ppm. Before: 70 forwards in 7 days at 1,000 msat = 10,000 msat/day.
    # After: 30 forwards in 2 days (15/day, +50 %) at 400 msat = 6,000 msat/day: -40 %.
    # More forwards, but keeping earnings needed x = 2.5 * 2/7 = 5/7 (50 forwards):
    # p0 = 5/12, P(Bin(100, 5/12) <= 30) = 0.0108 -> confidence 0.989.
    v = evaluate_impact(
        ImpactInput(
            flow(70, 1000, 7), flow(30, 400, 2), 1000, 400, CONTROLS_BEFORE, CONTROLS_STEADY
        )
    )
    assert v.outcome == HURT
    assert v.rollback
    assert v.adjusted_change == pytest.approx(-0.4)
    assert v.confidence == pytest.approx(1 - binom_cdf_exact(30, 100, Fraction(5, 12)))


def test_drop_within_the_margin_is_neutral():
    # -20 % (8,000 vs 10,000 msat/day) with plenty of data: within the 30 % margin.
    v = evaluate_impact(
        ImpactInput(
            flow(700, 100, 7), flow(160, 100, 2), 100, 100, CONTROLS_BEFORE, CONTROLS_STEADY
        )
    )
    assert v.adjusted_change == pytest.approx(-0.2)
    assert v.outcome == NEUTRAL
    assert any("within +/-30%" in r for r in v.reasons)


def test_no_controls_means_ratio_one():
    v = evaluate_impact(ImpactInput(flow(40, 500, 7), flow(0, 1000, 2), 500, 1000))
    assert v.control_ratio == 1.0
    assert v.outcome == HURT
    assert any("No control channels" in r for r in v.reasons)


def test_nothing_expected_is_inconclusive():
    # Baseline earned nothing (zero-fee channel).
    v = evaluate_impact(ImpactInput(flow(40, 0, 7), flow(0, 0, 2), 0, 100))
    assert v.outcome == INCONCLUSIVE
    assert v.adjusted_change is None
    assert v.confidence == 0.0
    # Controls earned nothing after the change: nothing to compare with.
    v = evaluate_impact(
        ImpactInput(flow(40, 500, 7), flow(0, 0, 2), 500, 1000, CONTROLS_BEFORE, flow(0, 0, 2))
    )
    assert v.outcome == INCONCLUSIVE
    assert v.control_ratio == 0.0
    assert any("control channels earned nothing" in r for r in v.reasons)


def test_fee_cut_to_zero_earning_nothing_is_certainly_hurt():
    v = evaluate_impact(ImpactInput(flow(40, 500, 7), flow(30, 0, 2), 500, 0))
    assert v.outcome == HURT
    assert v.confidence == 1.0


def test_a_cut_that_took_from_the_controls_says_so_and_shows_the_node_total():
    # 1000 -> 500 ppm. Channel: 70 forwards in 7 days at 1,000 msat = 10,000 msat/day before,
    # 80 in 2 days at 500 msat = 20,000 msat/day after. Controls: 50,000 msat/day before,
    # 30,000 after (ratio 0.6). Adjusted: 20,000 / (10,000 x 0.6) - 1 = +233 %; the node:
    # 60,000 -> 50,000 msat/day, -1/6.
    controls_after = ChannelFlow(120, 120_000_000, 60_000, 2 * D)
    v = evaluate_impact(
        ImpactInput(flow(70, 1000, 7), flow(80, 500, 2), 1000, 500, CONTROLS_BEFORE, controls_after)
    )
    assert v.control_ratio == pytest.approx(0.6)
    assert v.adjusted_change == pytest.approx(20_000 / 6_000 - 1)
    assert v.node_change == pytest.approx(-1 / 6)
    assert v.to_dict()["node_change"] == pytest.approx(-1 / 6)
    text = " ".join(v.reasons)
    assert "earned 60,000 msat/day before and 50,000 after: -17%" in text
    assert "part of its gain may be theirs" in text


def test_a_raise_that_pushed_forwards_to_the_controls_says_so():
    # 500 -> 1000 ppm: the channel falls from 10,000 to 2,000 msat/day, the controls rise
    # from 50,000 to 70,000 (ratio 1.4): the node goes 60,000 -> 72,000, +20 %.
    controls_after = ChannelFlow(280, 280_000_000, 140_000, 2 * D)
    v = evaluate_impact(
        ImpactInput(flow(140, 500, 7), flow(4, 1000, 2), 500, 1000, CONTROLS_BEFORE, controls_after)
    )
    assert v.adjusted_change < 0
    assert v.node_change == pytest.approx(0.2)
    assert "part of its loss may be their gain" in " ".join(v.reasons)


def test_steady_controls_or_none_add_no_substitution_sentence():
    steady = evaluate_impact(
        ImpactInput(
            flow(35, 1000, 7), flow(40, 500, 2), 1000, 500, CONTROLS_BEFORE, CONTROLS_STEADY
        )
    )
    # channel 5,000 -> 10,000 msat/day, controls 50,000 both: node 55,000 -> 60,000
    assert steady.node_change == pytest.approx(60_000 / 55_000 - 1)
    assert not any("may be theirs" in r or "their gain" in r for r in steady.reasons)
    alone = evaluate_impact(ImpactInput(flow(35, 1000, 7), flow(40, 500, 2), 1000, 500))
    assert alone.node_change is None
    assert not any("node as a whole" in r for r in alone.reasons)


def test_verdict_to_dict_is_plain_data():
    v = evaluate_impact(ImpactInput(flow(40, 500, 7), flow(0, 1000, 2), 500, 1000))
    d = v.to_dict()
    assert d["outcome"] == "hurt" and d["rollback"] is True
    assert isinstance(d["reasons"], list) and d["reasons"]


# -- helpers ------------------------------------------------------------------------------------


def test_due_for_evaluation():
    s = ImpactSettings()
    assert not due_for_evaluation(1_000_000, 1_000_000 + 48 * HOUR_SECONDS - 1, s)
    assert due_for_evaluation(1_000_000, 1_000_000 + 48 * HOUR_SECONDS, s)
    assert not due_for_evaluation(1_000_000, 999_000, s)
    assert due_for_evaluation(0, 6 * HOUR_SECONDS, ImpactSettings(evaluation_hours=6))


def test_flow_from_window_and_sum():
    f = ChannelFlow.from_window(FlowWindow(7, forwards_out=3, volume_out_msat=9, fees_msat=2))
    assert f == ChannelFlow(3, 9, 2, 7 * D)
    assert sum_flows([]) == ChannelFlow()
    assert sum_flows([f, f]) == ChannelFlow(6, 18, 4, 7 * D)
    with pytest.raises(ValueError, match="seconds"):
        sum_flows([f, ChannelFlow(1, 1, 1, D)])


def test_flow_and_input_reject_bad_values():
    with pytest.raises(ValueError, match="fees_msat"):
        ChannelFlow(1, 1, -1, D)
    with pytest.raises(ValueError, match="forwards_out"):
        ChannelFlow(True, 1, 1, D)
    with pytest.raises(ValueError, match="fee_after_ppm"):
        ImpactInput(ChannelFlow(), ChannelFlow(), 100, -5)


@given(st.integers(1, 150), st.data())
def test_binomial_tails_match_exact_sums(n, data):
    k = data.draw(st.integers(0, n))
    p = Fraction(data.draw(st.integers(1, 999)), 1000)
    assert _binom_cdf(k, n, p) == pytest.approx(binom_cdf_exact(k, n, p), abs=1e-12)
    assert _binom_sf(k, n, p) == pytest.approx(1 - binom_cdf_exact(k - 1, n, p), abs=1e-12)


# -- settings -----------------------------------------------------------------------------------


def test_settings_defaults_and_round_trip():
    s = ImpactSettings()
    assert s.to_dict() == {
        "evaluation_hours": 48,
        "baseline_days": 7,
        "max_earnings_drop": 0.3,
        "min_baseline_forwards": 5,
        "confidence_required": 0.8,
    }
    custom = ImpactSettings.from_dict({"evaluation_hours": 72, "max_earnings_drop": 0.5})
    assert custom.evaluation_hours == 72 and custom.max_earnings_drop == 0.5
    assert ImpactSettings.from_dict(custom.to_dict()) == custom
    assert isinstance(ImpactSettings.from_dict({"confidence_required": 1 - 0.1}), ImpactSettings)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"evaluation_hours": 5}, "evaluation_hours"),
        ({"evaluation_hours": 721}, "evaluation_hours"),
        ({"evaluation_hours": 12.5}, "evaluation_hours"),
        ({"baseline_days": 0}, "baseline_days"),
        ({"baseline_days": 61}, "baseline_days"),
        ({"max_earnings_drop": 1.0}, "max_earnings_drop"),
        ({"max_earnings_drop": "0.3"}, "max_earnings_drop"),
        ({"min_baseline_forwards": 0}, "min_baseline_forwards"),
        ({"min_baseline_forwards": True}, "min_baseline_forwards"),
        ({"confidence_required": 1.5}, "confidence_required"),
        ({"confidence_required": float("nan")}, "confidence_required"),
        ({"rollback_everything": True}, "rollback_everything"),
    ],
)
def test_settings_errors_name_the_field(data, field):
    with pytest.raises(ImpactConfigError, match=f"^{field}:"):
        ImpactSettings.from_dict(data)


def test_settings_error_is_a_value_error():
    with pytest.raises(ValueError, match="impact: expected a mapping"):
        ImpactSettings.from_dict([("evaluation_hours", 48)])
    with pytest.raises(ImpactConfigError, match=r"^baseline_days:"):
        ImpactSettings(baseline_days=100)


# -- properties ---------------------------------------------------------------------------------

counts = st.integers(0, 200)
amounts = st.integers(0, 2_000_000)
baseline_spans = st.integers(D, 30 * D)
evaluation_spans = st.integers(6 * HOUR_SECONDS, 10 * D)


@st.composite
def impact_inputs(draw):
    b_span, a_span = draw(baseline_spans), draw(evaluation_spans)
    baseline = ChannelFlow(draw(counts), draw(amounts), draw(amounts), b_span)
    after = ChannelFlow(draw(counts), draw(amounts), draw(amounts), a_span)
    if draw(st.booleans()):
        c_before = ChannelFlow(draw(counts), draw(amounts), draw(amounts), b_span)
        c_after = ChannelFlow(draw(counts), draw(amounts), draw(amounts), a_span)
    else:
        c_before = c_after = ChannelFlow()
    fees = st.integers(0, 5000)
    return ImpactInput(baseline, after, draw(fees), draw(fees), c_before, c_after)


settings_st = st.builds(
    ImpactSettings,
    evaluation_hours=st.integers(6, 72),
    max_earnings_drop=st.floats(0.05, 0.9),
    min_baseline_forwards=st.integers(1, 20),
    confidence_required=st.floats(0.5, 0.99),
)


def scale(f: ChannelFlow, *, count=1, amount=1, span=1) -> ChannelFlow:
    return ChannelFlow(
        f.forwards_out * count, f.volume_out_msat * amount, f.fees_msat * amount, f.seconds * span
    )


def scale_input(inp: ImpactInput, **kw) -> ImpactInput:
    return replace(
        inp,
        baseline=scale(inp.baseline, **kw),
        evaluation=scale(inp.evaluation, **kw),
        control_baseline=scale(inp.control_baseline, **kw),
        control_evaluation=scale(inp.control_evaluation, **kw),
    )


@given(impact_inputs(), settings_st)
def test_confidence_in_unit_interval_and_rollback_only_when_hurt(inp, s):
    v = evaluate_impact(inp, s)
    assert 0.0 <= v.confidence <= 1.0
    assert v.rollback == (v.outcome == HURT)
    if v.rollback:
        assert v.confidence >= s.confidence_required
        assert v.adjusted_change is not None and v.adjusted_change < -s.max_earnings_drop
    if inp.baseline.forwards_out < s.min_baseline_forwards:
        assert v.outcome == INCONCLUSIVE


@given(impact_inputs(), settings_st, st.integers(2, 1000))
def test_scaling_amounts_keeps_the_verdict(inp, s, k):
    # msat amounts are a unit: only their ratios count.
    v, w = evaluate_impact(inp, s), evaluate_impact(scale_input(inp, amount=k), s)
    assert (w.outcome, w.rollback, w.adjusted_change, w.confidence) == (
        v.outcome,
        v.rollback,
        v.adjusted_change,
        v.confidence,
    )
    assert w.control_ratio == v.control_ratio


@given(impact_inputs(), settings_st, st.integers(2, 10))
def test_scaling_spans_keeps_the_verdict_unless_the_window_was_too_short(inp, s, k):
    v, w = evaluate_impact(inp, s), evaluate_impact(scale_input(inp, span=k), s)
    assert w.adjusted_change == v.adjusted_change and w.confidence == v.confidence
    if inp.evaluation.seconds >= s.evaluation_hours * HOUR_SECONDS:
        assert w.outcome == v.outcome


@given(impact_inputs(), settings_st, st.integers(2, 5))
def test_scaling_both_windows_keeps_the_outcome(inp, s, k):
    # Every number of both windows (counts, amounts, spans) x k: the same rates, so the same
    # adjusted change. k times the data can only add confidence, so a decided verdict stays;
    # a neutral one may become decided in the direction of its adjusted change. Thresholds
    # (thin baseline, short window) are excluded: k times the data may clear them.
    v = evaluate_impact(inp, s)
    assume(v.outcome != INCONCLUSIVE)
    w = evaluate_impact(scale_input(inp, count=k, amount=k, span=k), s)
    assert w.adjusted_change == v.adjusted_change
    assert w.confidence >= v.confidence - 1e-9
    if v.outcome in (HURT, IMPROVED):
        assert w.outcome == v.outcome
    else:
        assert v.adjusted_change is not None
        allowed = {NEUTRAL}
        if v.adjusted_change < -s.max_earnings_drop:
            allowed.add(HURT)
        if v.adjusted_change > s.max_earnings_drop:
            allowed.add(IMPROVED)
        assert w.outcome in allowed


@given(impact_inputs(), settings_st, st.integers(1, 5_000_000))
def test_more_earnings_after_never_turns_a_non_hurt_into_hurt(inp, s, extra):
    v = evaluate_impact(inp, s)
    richer = replace(
        inp, evaluation=replace(inp.evaluation, fees_msat=inp.evaluation.fees_msat + extra)
    )
    w = evaluate_impact(richer, s)
    if v.outcome != HURT:
        assert w.outcome != HURT
    if v.outcome == IMPROVED:
        assert w.outcome == IMPROVED


@given(impact_inputs(), settings_st, st.integers(2, 100))
def test_only_the_controls_ratio_matters(inp, s, k):
    scaled = replace(
        inp,
        control_baseline=scale(inp.control_baseline, count=k, amount=k),
        control_evaluation=scale(inp.control_evaluation, count=k, amount=k),
    )
    v, w = evaluate_impact(inp, s), evaluate_impact(scaled, s)
    assert (w.outcome, w.control_ratio, w.confidence) == (v.outcome, v.control_ratio, v.confidence)
