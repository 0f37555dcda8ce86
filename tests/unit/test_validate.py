from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.changes import PolicyChange
from engine.node_source import RoutingPolicy
from engine.validate import (
    Bounds,
    ChannelOverride,
    UpdateLog,
    ValidationConfigError,
    Verdict,
    clip_to_bounds,
    effective_bounds,
    validate_batch,
    validate_policy_change,
    validate_rebalance,
)

CID = "812x3x0"
NOW = 1_700_000_000
HOUR = 3600
DAY = 86_400


def pol(
    fee: int = 100,
    base: int = 1000,
    *,
    cltv: int = 40,
    hmin: int = 1000,
    hmax: int = 500_000_000,
    in_rate: int | None = None,
    in_base: int | None = None,
    disabled: bool = False,
) -> RoutingPolicy:
    return RoutingPolicy(base, fee, cltv, hmin, hmax, in_base, in_rate, disabled)


def chg(before: RoutingPolicy, after: RoutingPolicy, cid: str = CID) -> PolicyChange:
    return PolicyChange(f"c-{cid}", cid, before, after, "test")


def check(change, bounds=None, override=None, log=None, now=NOW, pending=()) -> Verdict:
    return validate_policy_change(
        change, bounds or Bounds(), override, log or UpdateLog(), now, pending=pending
    )


def only_reason(verdict: Verdict) -> str:
    assert not verdict.ok
    assert len(verdict.reasons) == 1, verdict.reasons
    return verdict.reasons[0]


# -- accepted changes -----------------------------------------------------------------------


def test_a_modest_change_is_accepted_and_lists_its_checks():
    v = check(chg(pol(100), pol(140)))
    assert v.ok and v.reasons == ()
    text = "\n".join(v.checks)
    assert "812x3x0: fee rate 140 ppm within 0..5000 ppm" in text
    assert "fee rate change 100 -> 140 ppm (+40 ppm) within the maximum step 50 ppm" in text
    assert "no earlier update recorded" in text
    assert "update 1 of 4 allowed in 24 h" in text
    assert "node update 1 of 20 allowed in 1 h" in text


def test_defaults():
    b = Bounds()
    assert (b.min_fee_ppm, b.max_fee_ppm, b.min_base_fee_msat, b.max_base_fee_msat) == (
        0,
        5000,
        0,
        10_000,
    )
    assert b.max_relative_change == 0.5
    assert b.cooldown_seconds == 6 * HOUR
    assert (b.max_updates_per_channel_per_day, b.max_updates_per_node_per_hour) == (4, 20)
    assert (b.rebalance_max_amount_ratio, b.rebalance_max_fee_ppm) == (0.5, 1000)


# -- bounds ---------------------------------------------------------------------------------


def test_fee_rate_above_the_maximum():
    reason = only_reason(check(chg(pol(5000), pol(7000))))
    assert reason == "812x3x0: fee rate 7000 ppm above the maximum 5000 ppm"


def test_fee_rate_below_the_minimum():
    reason = only_reason(check(chg(pol(60), pol(40)), Bounds(min_fee_ppm=50)))
    assert reason == "812x3x0: fee rate 40 ppm below the minimum 50 ppm"


def test_base_fee_above_the_maximum_and_below_the_minimum():
    reason = only_reason(check(chg(pol(base=10_000), pol(base=11_000))))
    assert reason == "812x3x0: base fee 11000 msat above the maximum 10000 msat"
    reason = only_reason(check(chg(pol(base=600), pol(base=400)), Bounds(min_base_fee_msat=500)))
    assert reason == "812x3x0: base fee 400 msat below the minimum 500 msat"


def test_override_bounds_win_over_the_global_ones():
    tighter = ChannelOverride(CID, max_fee_ppm=3000)
    reason = only_reason(check(chg(pol(2500), pol(3500)), override=tighter))
    assert reason == "812x3x0: fee rate 3500 ppm above the channel maximum 3000 ppm"
    wider = ChannelOverride(CID, max_fee_ppm=8000)
    assert check(chg(pol(5000), pol(7000)), override=wider).ok
    # Sides the override leaves out keep the global value.
    reason = only_reason(check(chg(pol(60), pol(40)), Bounds(min_fee_ppm=50), override=wider))
    assert reason == "812x3x0: fee rate 40 ppm below the minimum 50 ppm"
    base = ChannelOverride(CID, min_base_fee_msat=2000)
    reason = only_reason(check(chg(pol(base=2500), pol(base=1500)), override=base))
    assert reason == "812x3x0: base fee 1500 msat below the channel minimum 2000 msat"


def test_override_crossing_the_other_global_side_moves_it():
    ov = ChannelOverride(CID, min_fee_ppm=6000)  # global max 5000
    eff = effective_bounds(Bounds(), ov)
    assert (eff.fee_rate.lo, eff.fee_rate.hi) == (6000, 6000)
    assert check(chg(pol(5000), pol(6000)), override=ov).ok
    reason = only_reason(check(chg(pol(6000), pol(6100)), override=ov))
    assert reason == "812x3x0: fee rate 6100 ppm above the channel maximum 6000 ppm"
    low = ChannelOverride(CID, max_fee_ppm=20)  # global min 50
    eff = effective_bounds(Bounds(min_fee_ppm=50), low)
    assert (eff.fee_rate.lo, eff.fee_rate.hi) == (20, 20)


def test_an_override_for_another_channel_is_a_caller_error():
    with pytest.raises(ValueError, match="override for 1x1x1"):
        check(chg(pol(100), pol(120)), override=ChannelOverride("1x1x1"))


# -- step limits ----------------------------------------------------------------------------


def test_fee_rate_step_is_limited_relative_to_before():
    reason = only_reason(check(chg(pol(100), pol(200))))
    assert reason.startswith("812x3x0: fee rate change 100 -> 200 ppm (+100 ppm) exceeds the ")
    assert "maximum step 50 ppm (50% of 100 ppm, at least 10 ppm)" in reason
    assert check(chg(pol(100), pol(150))).ok
    assert check(chg(pol(100), pol(50))).ok
    assert "-51 ppm" in only_reason(check(chg(pol(100), pol(49))))


def test_a_price_level_step_may_take_any_step_within_the_range_and_the_budgets():
    level = [chg(pol(100), pol(1600)), chg(pol(100), pol(25), "1x1x0")]
    free = validate_batch(level, Bounds(), {}, UpdateLog(), NOW, step_limit=False)
    assert [v.ok for v in free] == [True, True]
    assert "812x3x0: fee rate change 100 -> 1600 ppm (a price level step)" in free[0].checks
    assert not validate_batch(level, Bounds(), {}, UpdateLog(), NOW)[0].ok  # the default
    # The range, the cooldown and the budgets still hold.
    over = validate_batch(
        [chg(pol(100), pol(6000))], Bounds(), {}, UpdateLog(), NOW, step_limit=False
    )
    assert "above the maximum 5000 ppm" in over[0].reasons[0]
    cooling = UpdateLog(((CID, NOW - HOUR),))
    (v,) = validate_batch(level[:1], Bounds(), {}, cooling, NOW, step_limit=False)
    assert v.later and not v.ok


def test_fee_rate_from_zero_may_move_the_absolute_minimum():
    assert check(chg(pol(0), pol(10))).ok
    assert check(chg(pol(4), pol(14))).ok
    reason = only_reason(check(chg(pol(0), pol(11))))
    assert "0 -> 11 ppm" in reason and "maximum step 10 ppm" in reason
    assert check(chg(pol(0), pol(30)), Bounds(min_fee_step_ppm=30)).ok


def test_base_fee_step_same_ratio_with_an_absolute_allowance():
    assert check(chg(pol(base=1000), pol(base=2000))).ok
    assert check(chg(pol(base=0), pol(base=1000))).ok
    reason = only_reason(check(chg(pol(base=1000), pol(base=2001))))
    assert "base fee change 1000 -> 2001 msat" in reason
    assert "maximum step 1000 msat" in reason
    assert check(chg(pol(base=4000), pol(base=6000))).ok
    assert "maximum step 2000 msat" in only_reason(check(chg(pol(base=4000), pol(base=6001))))


def test_a_fee_outside_tightened_bounds_may_come_back_in_range():
    bounds = Bounds(min_fee_ppm=500)
    assert check(chg(pol(100), pol(500)), bounds).ok
    assert check(chg(pol(100), pol(750)), bounds).ok  # one step (50% of 500) above 500
    reason = only_reason(check(chg(pol(100), pol(751)), bounds))
    assert reason == (
        "812x3x0: fee rate change 100 -> 751 ppm (+251 ppm from 500 ppm, the allowed value "
        "nearest the current) exceeds the maximum step 250 ppm (50% of 500 ppm, at least 10 ppm)"
    )
    # Staying out of range is not allowed, however small the step.
    reason = only_reason(check(chg(pol(100), pol(110)), bounds))
    assert reason == "812x3x0: fee rate 110 ppm below the minimum 500 ppm"


# -- inbound fees ---------------------------------------------------------------------------


def test_inbound_fees_are_discounts_only():
    reason = only_reason(check(chg(pol(100, in_rate=0), pol(100, in_rate=5))))
    assert reason == (
        "812x3x0: inbound fee rate 5 ppm above the maximum 0 ppm "
        "(inbound fees may only be discounts)"
    )
    reason = only_reason(check(chg(pol(in_base=0), pol(in_base=10))))
    assert "inbound base fee 10 msat above the maximum 0 msat" in reason
    assert check(chg(pol(100, in_rate=0), pol(100, in_rate=-100))).ok


def test_inbound_discount_may_not_exceed_the_outbound_fee():
    reason = only_reason(check(chg(pol(150, in_rate=0), pol(150, in_rate=-200))))
    assert reason == (
        "812x3x0: inbound fee rate -200 ppm with outbound 150 ppm gives a total of -50 ppm, "
        "below the minimum 0 ppm"
    )
    reason = only_reason(check(chg(pol(base=1000, in_base=0), pol(base=1000, in_base=-1001))))
    assert "total of -1 msat, below the minimum 0 msat" in reason
    # Lowering the outbound fee under an existing discount is caught too.
    reason = only_reason(check(chg(pol(150, in_rate=-120), pol(110, in_rate=-120))))
    assert "total of -10 ppm" in reason


# -- nothing to change, pinned, excluded ----------------------------------------------------


def test_no_op_is_rejected():
    assert "nothing to change" in only_reason(check(chg(pol(), pol())))
    # None and 0 inbound fees are the same; `disabled` is not ours to change.
    assert "nothing to change" in only_reason(check(chg(pol(in_rate=None), pol(in_rate=0))))
    assert "nothing to change" in only_reason(check(chg(pol(), pol(disabled=True))))


def test_pinned_and_excluded_channels_are_never_touched():
    change = chg(pol(100), pol(120))
    reason = only_reason(check(change, override=ChannelOverride(CID, pinned=True)))
    assert reason == "812x3x0: channel is pinned; its policy is fixed by the admin"
    reason = only_reason(check(change, override=ChannelOverride(CID, excluded=True)))
    assert reason == "812x3x0: channel is excluded; Daznode leaves it alone"
    both = check(change, override=ChannelOverride(CID, pinned=True, excluded=True))
    assert len(both.reasons) == 2


def test_every_reason_is_reported_not_only_the_first():
    v = check(
        chg(pol(100, in_rate=0), pol(9000, in_rate=10)), override=ChannelOverride(CID, pinned=True)
    )
    assert len(v.reasons) == 3  # pinned, above max (no step: already out of range), inbound
    assert not v.ok


# -- other fields ---------------------------------------------------------------------------


def test_cltv_and_htlc_sanity_when_touched():
    reason = only_reason(check(chg(pol(cltv=40), pol(cltv=5))))
    assert reason == "812x3x0: cltv_delta 5 outside 18..2016 blocks"
    assert check(chg(pol(100, cltv=5), pol(120, cltv=5))).ok  # untouched: not our business
    reason = only_reason(check(chg(pol(hmin=1000, hmax=10_000), pol(hmin=1000, hmax=500))))
    assert reason == "812x3x0: htlc_max 500 msat below htlc_min 1000 msat"
    assert check(chg(pol(hmax=10_000), pol(hmax=20_000))).ok


# -- cooldown and gossip budget -------------------------------------------------------------


def test_cooldown_since_the_last_update():
    change = chg(pol(100), pol(120))
    log = UpdateLog(((CID, NOW - 2 * HOUR), ("1x1x1", NOW - 60)))
    reason = only_reason(check(change, log=log))
    assert reason == ("812x3x0: last updated 2 h ago, within the cooldown of 6 h (4 h left)")
    assert check(change, log=UpdateLog(((CID, NOW - 6 * HOUR),))).ok
    assert check(change, Bounds(cooldown_seconds=0), log=log).ok


def test_channel_daily_budget():
    bounds = Bounds(cooldown_seconds=0)
    log = UpdateLog(tuple((CID, NOW - h * HOUR) for h in (1, 5, 10, 23)))
    reason = only_reason(check(chg(pol(100), pol(120)), bounds, log=log))
    assert reason == "812x3x0: 4 updates in the last 24 h, the channel budget is 4 per day"
    # An update exactly 24 h old has left the window.
    log = UpdateLog(tuple((CID, NOW - h * HOUR) for h in (1, 5, 10, 24)))
    assert check(chg(pol(100), pol(120)), bounds, log=log).ok


def test_node_hourly_budget():
    others = tuple((f"1x{i}x0", NOW - 60 * i) for i in range(1, 21))  # 20 in the last hour
    reason = only_reason(check(chg(pol(100), pol(120)), log=UpdateLog(others)))
    assert reason == (
        "812x3x0: node made 20 updates in the last hour, the node budget is 20 per hour"
    )
    older = (*others[:-1], ("1x99x0", NOW - HOUR))
    assert check(chg(pol(100), pol(120)), log=UpdateLog(older)).ok


def test_pending_changes_count_as_happening_now():
    change = chg(pol(100), pol(120))
    other = chg(pol(100), pol(120), cid="1x1x1")
    reason = only_reason(check(change, Bounds(cooldown_seconds=0), pending=(change,)))
    assert reason == "812x3x0: already changed in this batch (one update per channel)"
    bounds = Bounds(max_updates_per_node_per_hour=2)
    log = UpdateLog((("2x2x2", NOW - 100),))
    reason = only_reason(check(change, bounds, log=log, pending=(other,)))
    assert "node made 2 updates in the last hour" in reason
    bounds = Bounds(cooldown_seconds=0, max_updates_per_channel_per_day=2)
    log = UpdateLog(((CID, NOW - HOUR),))
    v = check(change, bounds, log=log, pending=(change,))
    assert any("2 updates in the last 24 h" in r for r in v.reasons)


def test_batch_touches_a_channel_once_and_respects_the_budgets():
    bounds = Bounds(max_updates_per_node_per_hour=2)
    a1 = chg(pol(100), pol(120), "1x1x0")
    a2 = chg(pol(120), pol(130), "1x1x0")
    b = chg(pol(100), pol(120), "2x1x0")
    c = chg(pol(100), pol(120), "3x1x0")
    verdicts = validate_batch([a1, a2, b, c], bounds, {}, UpdateLog(), NOW)
    assert [v.ok for v in verdicts] == [True, False, True, False]
    assert "already changed in this batch" in verdicts[1].reasons[0]
    assert "node made 2 updates" in verdicts[3].reasons[-1]


def test_batch_rejections_do_not_use_the_budget_and_overrides_apply():
    bounds = Bounds(max_updates_per_node_per_hour=2)
    bad = chg(pol(100), pol(9000), "1x1x0")
    pinned = chg(pol(100), pol(120), "4x1x0")
    good = [chg(pol(100), pol(120), f"{i}x1x0") for i in (2, 3)]
    overrides = {"4x1x0": ChannelOverride("4x1x0", pinned=True)}
    verdicts = validate_batch([bad, pinned, *good], bounds, overrides, UpdateLog(), NOW)
    assert [v.ok for v in verdicts] == [False, False, True, True]
    assert "pinned" in verdicts[1].reasons[0]


# -- clip -----------------------------------------------------------------------------------


def test_clip_moves_a_suggestion_into_range_and_step():
    clipped = clip_to_bounds(chg(pol(100), pol(1000)), Bounds(), None)
    assert clipped.after.fee_rate_ppm == 150
    clipped = clip_to_bounds(chg(pol(4000), pol(9000)), Bounds(), None)
    assert clipped.after.fee_rate_ppm == 5000
    ov = ChannelOverride(CID, max_fee_ppm=300)
    clipped = clip_to_bounds(chg(pol(1000), pol(900, in_rate=-2000)), Bounds(), ov)
    # Back into range at once (the step counts from the bound), discount capped by the fee.
    assert clipped.after.fee_rate_ppm == 300
    assert clipped.after.inbound_fee_rate_ppm == -300
    assert check(clipped, override=ov).ok
    clipped = clip_to_bounds(chg(pol(1000), pol(100)), Bounds(min_fee_ppm=500), None)
    assert clipped.after.fee_rate_ppm == 1000 - 500  # one step down, never below the min
    ok = chg(pol(100), pol(120))
    assert clip_to_bounds(ok, Bounds(), None) is ok


# -- rebalance ------------------------------------------------------------------------------


def test_rebalance_accepted():
    v = validate_rebalance(200_000, 500, 1_000_000, 150, Bounds())
    assert v.ok, v.reasons
    assert any("maximum cost 100 sat below the expected earnings 150 sat" in c for c in v.checks)


def test_rebalance_amount():
    assert "amount 0 sat must be above 0 sat" in only_reason(
        validate_rebalance(0, 500, 1_000_000, 150, Bounds())
    )
    reason = only_reason(validate_rebalance(600_000, 100, 1_000_000, 150, Bounds()))
    assert reason == (
        "rebalance: amount 600000 sat above the maximum 500000 sat "
        "(50% of the capacity 1000000 sat)"
    )


def test_rebalance_fee_limit():
    reason = only_reason(validate_rebalance(1000, 1500, 1_000_000, 150, Bounds()))
    assert reason == "rebalance: fee limit 1500 ppm above the maximum 1000 ppm"


def test_rebalance_cost_must_be_below_the_expected_earnings():
    reason = only_reason(validate_rebalance(100_000, 1000, 1_000_000, 100, Bounds()))
    assert reason == (
        "rebalance: maximum cost 100 sat (100000 sat at 1000 ppm) "
        "not below the expected earnings 100 sat"
    )
    assert validate_rebalance(100_000, 1000, 1_000_000, 100.5, Bounds()).ok
    reason = only_reason(validate_rebalance(1234, 1, 1_000_000, 0, Bounds()))
    assert "maximum cost 0.001234 sat" in reason


# -- settings from plain data ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"max_fee_ppm": "a lot"}, "max_fee_ppm"),
        ({"max_fee_ppm": True}, "max_fee_ppm"),
        ({"cooldown_seconds": 1.5}, "cooldown_seconds"),
        ({"cooldown_seconds": -1}, "cooldown_seconds"),
        ({"max_relative_change": 0}, "max_relative_change"),
        ({"max_relative_change": float("nan")}, "max_relative_change"),
        ({"max_updates_per_node_per_hour": 0}, "max_updates_per_node_per_hour"),
        ({"rebalance_max_amount_ratio": 1.5}, "rebalance_max_amount_ratio"),
        ({"min_fee_ppm": 600, "max_fee_ppm": 500}, "min_fee_ppm"),
        ({"min_base_fee_msat": 6, "max_base_fee_msat": 5}, "min_base_fee_msat"),
        ({"max_fee": 5}, "max_fee"),
    ],
)
def test_bounds_from_dict_names_the_bad_field(data, field):
    with pytest.raises(ValidationConfigError) as err:
        Bounds.from_dict(data)
    assert str(err.value).startswith(field)


def test_bounds_round_trip_and_partial_data():
    b = Bounds.from_dict({"max_fee_ppm": 2500.0, "max_relative_change": 1})
    assert b.max_fee_ppm == 2500 and isinstance(b.max_fee_ppm, int)
    assert b.max_relative_change == 1.0 and b.cooldown_seconds == 6 * HOUR
    assert Bounds.from_dict(b.to_dict()) == b
    with pytest.raises(ValidationConfigError, match=r"^bounds: expected a mapping"):
        Bounds.from_dict([1, 2])
    with pytest.raises(ValidationConfigError, match=r"^max_fee_ppm"):
        Bounds(max_fee_ppm=-5)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({}, "channel_id"),
        ({"channel_id": "nope"}, "channel_id"),
        ({"channel_id": 812}, "channel_id"),
        ({"channel_id": CID, "pinned": "yes"}, "pinned"),
        ({"channel_id": CID, "excluded": 1}, "excluded"),
        ({"channel_id": CID, "max_fee_ppm": -1}, "max_fee_ppm"),
        ({"channel_id": CID, "min_fee_ppm": 10, "max_fee_ppm": 5}, "min_fee_ppm"),
        ({"channel_id": CID, "min_base_fee_msat": 9, "max_base_fee_msat": 5}, "min_base_fee_msat"),
        ({"channel_id": CID, "colour": "red"}, "colour"),
    ],
)
def test_override_from_dict_names_the_bad_field(data, field):
    with pytest.raises(ValidationConfigError) as err:
        ChannelOverride.from_dict(data)
    assert str(err.value).startswith(field)


def test_override_round_trip_and_lnd_channel_ids():
    ov = ChannelOverride.from_dict({"channel_id": CID, "max_fee_ppm": 3000, "pinned": True})
    assert ov == ChannelOverride(CID, max_fee_ppm=3000, pinned=True)
    assert ChannelOverride.from_dict(ov.to_dict()) == ov
    lnd = (812 << 40) | (3 << 16)
    assert ChannelOverride.from_dict({"channel_id": str(lnd)}).channel_id == CID
    with pytest.raises(ValidationConfigError, match=r"^channel_id"):
        ChannelOverride(str(lnd))


def test_update_log_from_dict():
    log = UpdateLog.from_dict({"updates": [{"channel_id": CID, "at": NOW}, ["1x1x1", NOW - 5]]})
    assert log.updates == ((CID, NOW), ("1x1x1", NOW - 5))
    assert UpdateLog.from_dict(log.to_dict()) == log
    assert log.last_update(CID) == NOW and log.last_update("9x9x9") is None
    assert log.pruned(NOW + DAY - 1).updates == ((CID, NOW),)
    for data, field in [
        (
            {"updates": [{"channel_id": CID, "at": NOW}, {"channel_id": CID, "at": "x"}]},
            "updates[1].at",
        ),
        ({"updates": [{"channel_id": "bad", "at": NOW}]}, "updates[0].channel_id"),
        ({"updates": [{"channel_id": CID}]}, "updates[0]"),
        ({"updates": "all"}, "updates"),
        ({"entries": []}, "entries"),
    ]:
        with pytest.raises(ValidationConfigError) as err:
            UpdateLog.from_dict(data)
        assert str(err.value).startswith(field), (data, err.value)


def test_verdict_round_trip():
    v = check(chg(pol(100), pol(9000)))
    assert Verdict.from_dict(v.to_dict()) == v
    with pytest.raises(ValidationConfigError, match=r"^ok"):
        Verdict.from_dict({"ok": True, "reasons": ["x"]})
    with pytest.raises(ValidationConfigError, match=r"^reasons"):
        Verdict.from_dict({"ok": False, "reasons": "x"})


# -- properties -----------------------------------------------------------------------------

CHANNELS = ("100x1x0", "100x2x0", "100x3x0", "100x4x0")


@st.composite
def bounds_st(draw) -> Bounds:
    min_fee = draw(st.integers(0, 300))
    min_base = draw(st.integers(0, 2000))
    return Bounds(
        min_fee_ppm=min_fee,
        max_fee_ppm=min_fee + draw(st.integers(0, 6000)),
        min_base_fee_msat=min_base,
        max_base_fee_msat=min_base + draw(st.integers(0, 12_000)),
        max_relative_change=draw(st.sampled_from([0.1, 0.25, 0.29, 0.5, 1.0, 2.0])),
        min_fee_step_ppm=draw(st.integers(1, 50)),
        min_base_fee_step_msat=draw(st.integers(1, 2000)),
        cooldown_seconds=draw(st.sampled_from([0, 60, 1800, 6 * HOUR, DAY])),
        max_updates_per_channel_per_day=draw(st.integers(1, 6)),
        max_updates_per_node_per_hour=draw(st.integers(1, 8)),
    )


def optional_pair(lo: int, hi: int):
    return st.tuples(st.none() | st.integers(lo, hi), st.none() | st.integers(lo, hi)).map(
        lambda p: tuple(sorted(p)) if None not in p else p
    )


@st.composite
def override_st(draw, cid: str, flags: bool = True) -> ChannelOverride | None:
    if draw(st.integers(0, 3)) == 0:
        return None
    fee_lo, fee_hi = draw(optional_pair(0, 8000))
    base_lo, base_hi = draw(optional_pair(0, 15_000))
    return ChannelOverride(
        cid,
        min_fee_ppm=fee_lo,
        max_fee_ppm=fee_hi,
        min_base_fee_msat=base_lo,
        max_base_fee_msat=base_hi,
        pinned=flags and draw(st.integers(0, 5)) == 0,
        excluded=flags and draw(st.integers(0, 5)) == 0,
    )


@st.composite
def policy_st(draw) -> RoutingPolicy:
    fee = draw(st.integers(0, 8000) | st.integers(0, 60))
    base = draw(st.integers(0, 15_000) | st.sampled_from([0, 1000]))
    return RoutingPolicy(
        base_fee_msat=base,
        fee_rate_ppm=fee,
        cltv_delta=draw(st.sampled_from([40, 40, 80, 5, 3000])),
        htlc_min_msat=draw(st.sampled_from([1000, 1, 0])),
        htlc_max_msat=draw(st.sampled_from([500_000_000, 990_000_000, 500])),
        inbound_base_fee_msat=draw(st.none() | st.integers(-2000, 100)),
        inbound_fee_rate_ppm=draw(st.none() | st.integers(-3000, 100)),
    )


@st.composite
def nearby_st(draw, before: RoutingPolicy) -> RoutingPolicy:
    """A proposal near `before` (what the engine usually suggests), or anything at all."""
    if draw(st.booleans()):
        return draw(policy_st())
    in_rate = before.inbound_fee_rate_ppm
    return replace(
        before,
        fee_rate_ppm=max(0, before.fee_rate_ppm + draw(st.integers(-400, 400))),
        base_fee_msat=max(0, before.base_fee_msat + draw(st.integers(-1500, 1500))),
        inbound_fee_rate_ppm=None
        if in_rate is None
        else min(0, in_rate + draw(st.integers(-50, 50))),
    )


def nudge(draw, value: int | None) -> int | None:
    return None if value is None else value + draw(st.integers(-3, 3) | st.integers(-60, 60))


@st.composite
def proposal_st(draw) -> tuple[PolicyChange, str]:
    """A proposal and how to treat it: "raw", "clip" (clip_to_bounds first) or "nudge" (clip,
    then move the fees a little, which lands right on and around every limit)."""
    cid = draw(st.sampled_from(CHANNELS))
    before = draw(policy_st())
    after = draw(nearby_st(before))
    change = PolicyChange(f"p-{draw(st.integers(0, 10**6))}", cid, before, after)
    return change, draw(st.sampled_from(["raw", "clip", "nudge"]))


def prepare(draw, change: PolicyChange, how: str, bounds: Bounds, override) -> PolicyChange:
    if how == "raw":
        return change
    clipped = clip_to_bounds(change, bounds, override)
    if how == "clip":
        return clipped
    a = clipped.after
    after = replace(
        a,
        fee_rate_ppm=nudge(draw, a.fee_rate_ppm),
        base_fee_msat=nudge(draw, a.base_fee_msat),
        inbound_fee_rate_ppm=nudge(draw, a.inbound_fee_rate_ppm),
        inbound_base_fee_msat=nudge(draw, a.inbound_base_fee_msat),
    )
    return replace(clipped, after=after)


# Time steps: anything, short, and right at the edges of the windows and cooldowns.
EDGES = [1, 59, 60, 61, 1799, 1800, HOUR - 1, HOUR, HOUR + 1, 6 * HOUR - 1, 6 * HOUR, DAY - 1]
time_step_st = st.integers(0, 4 * HOUR) | st.integers(0, 120) | st.sampled_from(EDGES)


@st.composite
def scenario_st(draw):
    bounds = draw(bounds_st())
    overrides = {cid: ov for cid in CHANNELS if (ov := draw(override_st(cid))) is not None}
    steps = draw(
        st.lists(
            st.tuples(
                time_step_st,
                st.lists(proposal_st(), min_size=1, max_size=5),
                st.booleans(),  # as one batch, or one change at a time
            ),
            min_size=1,
            max_size=25,
        )
    )
    return bounds, overrides, steps


def allowed(g_lo: int, g_hi: int, o_lo: int | None, o_hi: int | None) -> tuple[int, int]:
    """The documented precedence, spelt out: the override's sides first; a global side the
    override crosses gives way."""
    lo = g_lo if o_lo is None else o_lo
    hi = g_hi if o_hi is None else o_hi
    if o_lo is not None and o_hi is None:
        hi = max(hi, o_lo)
    if o_hi is not None and o_lo is None:
        lo = min(lo, o_hi)
    return lo, hi


def differs(before: RoutingPolicy, after: RoutingPolicy) -> bool:
    return (
        before.base_fee_msat != after.base_fee_msat
        or before.fee_rate_ppm != after.fee_rate_ppm
        or before.cltv_delta != after.cltv_delta
        or before.htlc_min_msat != after.htlc_min_msat
        or before.htlc_max_msat != after.htlc_max_msat
        or (before.inbound_base_fee_msat or 0) != (after.inbound_base_fee_msat or 0)
        or (before.inbound_fee_rate_ppm or 0) != (after.inbound_fee_rate_ppm or 0)
    )


def assert_history_is_safe(history, bounds: Bounds, overrides) -> None:
    """history: (time, batch id or None, change) of every accepted change, in order."""
    rel = bounds.max_relative_change
    for t, _, c in history:
        ov = overrides.get(c.channel_id)
        assert not (ov and (ov.pinned or ov.excluded)), c
        assert differs(c.before, c.after), c
        for old, new, g_lo, g_hi, o_lo, o_hi, min_step in (
            (
                c.before.fee_rate_ppm,
                c.after.fee_rate_ppm,
                bounds.min_fee_ppm,
                bounds.max_fee_ppm,
                ov and ov.min_fee_ppm,
                ov and ov.max_fee_ppm,
                bounds.min_fee_step_ppm,
            ),
            (
                c.before.base_fee_msat,
                c.after.base_fee_msat,
                bounds.min_base_fee_msat,
                bounds.max_base_fee_msat,
                ov and ov.min_base_fee_msat,
                ov and ov.max_base_fee_msat,
                bounds.min_base_fee_step_msat,
            ),
        ):
            lo, hi = allowed(g_lo, g_hi, o_lo, o_hi)
            assert lo <= new <= hi, (c, lo, hi)
            ref = min(hi, max(lo, old))
            assert abs(new - ref) <= max(rel * ref, min_step) + 1e-6, (c, ref)
        for inbound, outbound in (
            (c.after.inbound_fee_rate_ppm, c.after.fee_rate_ppm),
            (c.after.inbound_base_fee_msat, c.after.base_fee_msat),
        ):
            assert inbound is None or -outbound <= inbound <= 0, c
        if c.after.cltv_delta != c.before.cltv_delta:
            assert 18 <= c.after.cltv_delta <= 2016
        # Budgets over the accepted history (windows end at t and include it).
        same = [u for u, _, d in history if d.channel_id == c.channel_id and t - DAY < u <= t]
        assert len(same) <= bounds.max_updates_per_channel_per_day, (c.channel_id, t)
        node = [u for u, _, _ in history if t - HOUR < u <= t]
        assert len(node) <= bounds.max_updates_per_node_per_hour, t
    for cid in CHANNELS:
        mine = [(t, batch) for t, batch, c in history if c.channel_id == cid]
        for (t1, b1), (t2, b2) in itertools.pairwise(mine):
            assert t2 - t1 >= bounds.cooldown_seconds, (cid, t1, t2)
            assert b1 is None or b1 != b2, (cid, "twice in one batch")


@settings(max_examples=200, deadline=None)
@given(st.data(), scenario_st())
def test_accepted_history_never_breaks_a_limit(data, scenario):
    bounds, overrides, steps = scenario
    log, now, history = UpdateLog(), NOW, []
    for batch_id, (dt, proposals, as_batch) in enumerate(steps):
        now += dt
        changes = [
            prepare(data.draw, c, how, bounds, overrides.get(c.channel_id)) for c, how in proposals
        ]
        if as_batch:
            verdicts = validate_batch(changes, bounds, overrides, log, now)
            for c, v in zip(changes, verdicts, strict=True):
                assert v.ok == (not v.reasons)
                if v.ok:
                    history.append((now, batch_id, c))
                    log = log.with_update(c.channel_id, now)
        else:
            for c in changes:
                v = validate_policy_change(c, bounds, overrides.get(c.channel_id), log, now)
                if v.ok:
                    history.append((now, None, c))
                    log = log.with_update(c.channel_id, now)
    assert_history_is_safe(history, bounds, overrides)


def test_the_property_scenarios_do_accept_changes():
    """Guard against a vacuous property: a plain run accepts most clipped proposals."""
    bounds = Bounds(cooldown_seconds=HOUR, max_updates_per_channel_per_day=24)
    log, history = UpdateLog(), []
    for i in range(48):
        now = NOW + i * HOUR
        for cid in CHANNELS:
            c = clip_to_bounds(chg(pol(100 + i), pol(10_000), cid), bounds, None)
            if validate_policy_change(c, bounds, None, log, now).ok:
                history.append((now, i, c))
                log = log.with_update(cid, now)
    assert len(history) == 48 * 4
    assert_history_is_safe(history, bounds, {})


@settings(max_examples=200, deadline=None)
@given(st.data(), bounds_st(), st.sampled_from(CHANNELS), policy_st())
def test_clip_output_is_accepted(data, bounds, cid, before):
    override = data.draw(override_st(cid, flags=False))
    after = data.draw(nearby_st(before))
    change = PolicyChange("p", cid, before, after)
    clipped = clip_to_bounds(change, bounds, override)
    assert (clipped.change_id, clipped.channel_id, clipped.before) == ("p", cid, before)
    assert clip_to_bounds(clipped, bounds, override) == clipped
    verdict = validate_policy_change(clipped, bounds, override, UpdateLog(), NOW)
    if differs(before, clipped.after):
        assert verdict.ok, verdict.reasons
    else:
        assert len(verdict.reasons) == 1 and "nothing to change" in verdict.reasons[0]
    if validate_policy_change(change, bounds, override, UpdateLog(), NOW).ok:
        assert clipped == change


def test_only_cooldown_and_budget_rejections_are_marked_for_later():
    # The cooldown and the gossip budget lift with time; a bound does not.
    cooled = check(chg(pol(100), pol(120)), log=UpdateLog(((CID, NOW - 2 * HOUR),)))
    assert cooled.later == cooled.reasons and len(cooled.later) == 1
    others = tuple((f"1x{i}x0", NOW - 60 * i) for i in range(1, 21))
    busy = check(chg(pol(100), pol(120)), log=UpdateLog(others))
    assert busy.later == busy.reasons
    too_high = check(chg(pol(4900), pol(7000)))
    assert not too_high.ok and too_high.later == ()
