import calendar
import datetime as dt
import json
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.reports import (
    BalanceSample,
    Period,
    Report,
    ReportChannel,
    ReportFeeChange,
    ReportForward,
    ReportInput,
    ReportRebalance,
    build_report,
    format_sat,
    period_bounds,
    period_containing,
)

H, D = 3_600, 86_400


def utc(year, month, day, hour=0, minute=0, second=0):
    return calendar.timegm((year, month, day, hour, minute, second))


# Leap day 2024-02-29, the day a report made at midnight on March 1st covers.
DAY = Period("daily", utc(2024, 2, 29), utc(2024, 3, 1))
T = DAY.start

ALICE = ReportChannel("A", "alice", 1_000_000, 500_000_000, remote_msat=500_000_000)
BOB = ReportChannel("B", "bob", 2_000_000, 100_000_000)  # 5 % of capacity: drained
CAROL = ReportChannel("C", "carol", 500_000, 450_000_000)  # exactly 90 %
DAVE = ReportChannel("D", "", 1_000_000, 300_000_000, opened_at=T + 18 * H)  # exactly 30 %

FORWARDS = (
    ReportForward(T + 1 * H, "A", "B", 2_001_000, 2_000_000, 1_000),
    ReportForward(T + 2 * H, "A", "B", 5_002_500, 5_000_000, 2_500),
    ReportForward(T + 3 * H, "B", "A", 1_000_300, 1_000_000, 300),
    # Failures carry the fee they would have earned: it must not count.
    ReportForward(T + 4 * H, "A", "B", 10_005_000, 10_000_000, 5_000, "failed"),
    ReportForward(T + 5 * H, "B", "A", 1_000_100, 1_000_000, 100, "local_failed"),
    # Outside [start, end): ignored.
    ReportForward(T - 10, "A", "B", 100_099_999, 100_000_000, 99_999),
    ReportForward(DAY.end, "A", "B", 100_099_999, 100_000_000, 99_999),
)
REBALANCES = (
    ReportRebalance(T + 6 * H, "C", "B", 50_000_000, 1_200, True),
    ReportRebalance(T + 7 * H, "C", "B", 50_000_000, 0, False),
    ReportRebalance(T - 1, "C", "B", 50_000_000, 9_999, True),
)
CHANGES = (
    ReportFeeChange(T + 9 * H, "B", 500, 400, "hurt", -0.5, rolled_back=True, node_change=-0.1),
    ReportFeeChange(T + 8 * H, "A", 100, 150, "improved", 0.4),
    ReportFeeChange(T + 10 * H, "C", 200, 200),
    ReportFeeChange(T - 5, "A", 90, 100, "neutral", 0.0),
)
SAMPLES = (
    *(BalanceSample.snapshot("A", T + i * H, 500_000_000, True, 500_000_000) for i in range(4)),
    BalanceSample("B", T, 100_000_000, samples=4, active_samples=3),  # an hourly bucket
    BalanceSample.snapshot("C", T + H, 450_000_000, True, None),
    BalanceSample.snapshot("C", T + 2 * H, 450_000_000, False, None),
    BalanceSample.snapshot("D", T + 20 * H, 300_000_000, True, 700_000_000),
    BalanceSample.snapshot("Z", T + H, 1, False, 1),  # not a listed channel: ignored
    BalanceSample.snapshot("A", T - H, 0, False, 1_000_000_000),  # before the period
)


def node_input(**changes):
    base = {
        "period": DAY,
        "channels": (ALICE, BOB, CAROL, DAVE),
        "forwards": FORWARDS,
        "rebalances": REBALANCES,
        "fee_changes": CHANGES,
        "samples": SAMPLES,
        "failures_known": True,
    }
    return ReportInput(**{**base, **changes})


# -- a hand-computed node -----------------------------------------------------------------------


def test_totals_of_a_small_node():
    t = build_report(node_input()).totals
    assert t.fees_msat == 1_000 + 2_500 + 300
    assert t.volume_msat == 2_000_000 + 5_000_000 + 1_000_000
    assert t.forwards == 3
    assert t.failures_known and t.failed == 2
    assert t.success_ratio == pytest.approx(3 / 5)
    assert t.rebalances == 2 and t.rebalances_failed == 1
    assert t.rebalanced_msat == 50_000_000
    assert t.rebalance_cost_msat == 1_200
    assert t.net_profit_msat == 3_800 - 1_200 == 2_600
    assert t.fee_changes == 3
    assert t.channels == 4
    assert t.capacity_sat == 4_500_000
    assert t.local_msat == 1_350_000_000
    assert t.uptime == pytest.approx((4 + 3 + 1 + 1) / (4 + 4 + 2 + 1))
    for name in ("fees_msat", "volume_msat", "rebalance_cost_msat", "net_profit_msat"):
        assert type(getattr(t, name)) is int


def test_channel_breakdown_of_a_small_node():
    r = build_report(node_input())
    assert [c.channel_id for c in r.channels] == ["B", "A", "C", "D"]  # by fees, then id
    b, a, c, d = r.channels
    assert (b.forwards_out, b.volume_out_msat, b.fees_msat) == (2, 7_000_000, 3_500)
    assert (b.forwards_in, b.volume_in_msat, b.failed) == (1, 1_000_300, 1)
    assert b.rebalance_cost_msat == 1_200 and b.net_msat == 2_300
    assert b.fee_share == pytest.approx(3_500 / 3_800)
    assert (a.forwards_out, a.volume_out_msat, a.fees_msat) == (1, 1_000_000, 300)
    assert (a.forwards_in, a.volume_in_msat, a.failed) == (2, 7_003_500, 1)
    assert a.net_msat == 300 and a.fee_share == pytest.approx(300 / 3_800)
    assert c.fees_msat == d.fees_msat == 0 and c.fee_share == 0.0
    assert c.idle and d.idle and not a.idle and not b.idle
    assert a.local_ratio == 0.5 and b.local_ratio == 0.05 and c.local_ratio == 0.9
    assert (a.uptime, b.uptime, c.uptime, d.uptime) == (1.0, 0.75, 0.5, 1.0)
    assert (a.samples, b.samples, c.samples, d.samples) == (4, 4, 2, 1)
    assert d.open_share == pytest.approx(0.25) and a.open_share == 1.0
    assert b.peer_alias == "bob" and all(x.listed for x in r.channels)
    assert r.top_earners == ("B", "A")
    assert build_report(node_input(), top_n=1).top_earners == ("B",)
    assert r.idle == ("C", "D")
    assert r.drained == ("B",)


def test_fee_changes_and_their_effect():
    r = build_report(node_input())
    assert [(c.channel_id, c.direction, c.outcome) for c in r.fee_changes] == [
        ("A", "raise", "improved"),
        ("B", "cut", "hurt"),
        ("C", "same", "pending"),
    ]
    hurt = r.fee_changes[1]
    assert hurt.rolled_back and hurt.adjusted_change == -0.5 and hurt.peer_alias == "bob"
    assert hurt.node_change == -0.1 and r.fee_changes[0].node_change is None
    assert r.fee_changes[2].adjusted_change is None
    assert r.outcomes == {"improved": 1, "neutral": 0, "hurt": 1, "inconclusive": 0, "pending": 1}


def test_balance_distribution_uses_exact_bucket_edges():
    buckets = build_report(node_input()).balance_buckets
    assert [b.label for b in buckets] == ["0-10%", "10-30%", "30-70%", "70-90%", "90-100%"]
    assert [(b.channels, b.capacity_sat, b.local_msat) for b in buckets] == [
        (1, 2_000_000, 100_000_000),  # bob 5 %
        (0, 0, 0),
        (2, 2_000_000, 800_000_000),  # alice 50 %, dave exactly 30 %
        (0, 0, 0),
        (1, 500_000, 450_000_000),  # carol exactly 90 %
    ]


def test_highlights_say_it_in_plain_words():
    assert build_report(node_input()).highlights == (
        "Earned 3.8 sat in fees from 3 forwards, 8,000 sat forwarded.",
        "2 forwards failed: 60% of 5 attempts succeeded.",
        "Rebalancing cost 1.2 sat to move 50,000 sat (2 rebalances, 1 failed).",
        "Net profit: 2.6 sat.",
        "Top earner: bob, 92% of the fees.",
        "2 channels forwarded nothing (1 opened during the period): carol, D.",
        "1 channel is drained (under 10% local): bob.",
        "3 fee changes applied: 1 improved, 1 hurt, 1 not measured yet; 1 rolled back.",
        "Channels were active 81.8% of the time.",
        "Often offline: carol (50%), bob (75%).",
    )


def test_report_is_json_ready_and_reads_back():
    r = build_report(node_input())
    data = json.loads(json.dumps(r.to_dict()))
    assert data["period"] == {
        "kind": "daily",
        "start": T,
        "end": T + D,
        "label": "2024-02-29",
    }
    assert data["totals"]["failures"] == "known"
    assert Report.from_dict(data) == r
    # a report stored before verdicts had node_change still reads back
    for change in data["fee_changes"]:
        del change["node_change"]
    old = Report.from_dict(data)
    assert [c.node_change for c in old.fee_changes] == [None] * len(r.fee_changes)
    assert r.channel("A") is r.channels[1] and r.channel("nope") is None


def test_same_report_whatever_the_order_of_the_rows():
    inp = node_input()
    rng = random.Random(7)
    shuffled = node_input(
        channels=rng.sample(inp.channels, len(inp.channels)),
        forwards=rng.sample(inp.forwards, len(inp.forwards)),
        rebalances=rng.sample(inp.rebalances, len(inp.rebalances)),
        fee_changes=rng.sample(inp.fee_changes, len(inp.fee_changes)),
        samples=rng.sample(inp.samples, len(inp.samples)),
    )
    assert build_report(shuffled) == build_report(inp)


def test_inputs_from_database_rows():
    fwd = ReportForward.from_row(
        {
            "node_pubkey": "02ab",
            "idx": 7,
            "ts": T,
            "ts_ns": T * 10**9,
            "chan_in": "A",
            "chan_out": "B",
            "amt_in_msat": 1_001,
            "amt_out_msat": 1_000,
            "fee_msat": 1,
            "status": "settled",
            "fail_reason": None,
        }
    )
    assert fwd == ReportForward(T, "A", "B", 1_001, 1_000, 1)
    reb = ReportRebalance.from_row(
        {
            "id": 1,
            "ts": T,
            "actor": "auto",
            "out_channel": "C",
            "in_channel": "B",
            "amount_msat": 5,
            "max_fee_msat": 9,
            "fee_msat": 2,
            "ok": 1,
            "detail": "",
        }
    )
    assert reb == ReportRebalance(T, "C", "B", 5, 2, True)
    snap = BalanceSample.from_snapshot_row(
        {"ts": T, "channel_id": "A", "local_msat": 3, "remote_msat": 7, "active": 0}
    )
    assert snap == BalanceSample("A", T, 3, 1, 0, 10)
    bucket = BalanceSample.from_bucket_row(
        {
            "bucket": T,
            "channel_id": "A",
            "samples": 3,
            "active_samples": 2,
            "sum_local_msat": 10,
            "min_local_msat": 1,
            "max_local_msat": 6,
            "capacity_msat": 20,
        }
    )
    assert bucket == BalanceSample("A", T, 3, 3, 2, 20)


# -- edge cases ---------------------------------------------------------------------------------


def test_no_forwards():
    r = build_report(node_input(forwards=(), rebalances=(), fee_changes=()))
    t = r.totals
    assert (t.fees_msat, t.volume_msat, t.forwards, t.failed) == (0, 0, 0, 0)
    assert t.success_ratio is None  # no attempt: no ratio
    assert t.net_profit_msat == 0
    assert all(c.fee_share == 0.0 and c.idle for c in r.channels)
    assert r.idle == ("A", "B", "C", "D") and r.top_earners == ()
    assert r.highlights[0] == "No forwards settled in this period."
    assert not any("Net" in line or "failed" in line for line in r.highlights)


def test_only_failures():
    failures = tuple(
        ReportForward(T + i, "A", "B", 1_001_000, 1_000_000, 1_000, "failed") for i in range(3)
    )
    r = build_report(node_input(forwards=failures, rebalances=()))
    t = r.totals
    assert (t.forwards, t.failed, t.success_ratio, t.fees_msat) == (0, 3, 0.0, 0)
    assert r.channel("B").failed == 3 and r.channel("A").failed == 0
    assert r.top_earners == ()
    assert "All 3 forward attempts failed." in r.highlights


def test_failures_unknown():
    settled = tuple(f for f in FORWARDS if f.settled)
    r = build_report(node_input(forwards=settled, failures_known=False))
    t = r.totals
    assert (t.failed, t.success_ratio, t.failures_known) == (None, None, False)
    assert t.to_dict()["failures"] == "unknown"
    assert all(c.failed is None for c in r.channels)
    assert t.fees_msat == 3_800 and t.forwards == 3
    assert "Failed forwards: unknown (this node reports settled forwards only)." in r.highlights


def test_failed_rows_while_failures_are_unknown_is_a_shell_error():
    with pytest.raises(ValueError, match="failures_known"):
        node_input(failures_known=False)


def test_an_empty_period():
    r = build_report(ReportInput(DAY))
    t = r.totals
    assert t.fees_msat == t.forwards == t.channels == t.capacity_sat == t.net_profit_msat == 0
    assert t.uptime is None and t.failed is None
    assert r.channels == () and r.fee_changes == ()
    assert all(b.channels == 0 for b in r.balance_buckets) and len(r.balance_buckets) == 5
    assert r.highlights == (
        "No forwards settled in this period.",
        "Failed forwards: unknown (this node reports settled forwards only).",
    )
    assert Report.from_dict(json.loads(json.dumps(r.to_dict()))) == r


def test_a_channel_opened_mid_period():
    late = ReportChannel("N", "newbie", 1_000_000, 0, opened_at=T + 12 * H)
    samples = [BalanceSample.snapshot("N", T + 13 * H, 0, True, 1_000_000_000)]
    forwards = [ReportForward(T + 14 * H, "A", "N", 1_000, 900, 100)]
    r = build_report(ReportInput(DAY, [ALICE, late], forwards, samples=samples))
    n = r.channel("N")
    assert n.open_share == 0.5 and n.uptime == 1.0 and n.samples == 1
    assert n.fees_msat == 100 and n.fee_share == 1.0 and not n.idle
    assert n.drained  # empty at the end
    assert r.channel("A").open_share == 1.0


def test_forwards_through_a_channel_closed_in_the_period_still_count():
    forwards = [ReportForward(T + H, "A", "gone", 2_000, 1_000, 1_000)]
    rebalances = [ReportRebalance(T + H, "A", "gone2", 10, 3, True)]
    r = build_report(ReportInput(DAY, [ALICE], forwards, rebalances))
    gone = r.channel("gone")
    assert gone is not None and not gone.listed and gone.fees_msat == 1_000
    assert gone.capacity_sat == 0 and not gone.drained
    assert r.channel("gone2").rebalance_cost_msat == 3
    assert r.totals.fees_msat == 1_000 and r.totals.net_profit_msat == 997
    assert r.totals.channels == 1 and r.idle == ()


def test_drained_at_the_end_or_for_most_samples():
    def drained(end_local, sample_locals):
        ch = ReportChannel("E", "", 1_000_000, end_local)
        samples = [BalanceSample("E", T + i, v) for i, v in enumerate(sample_locals)]
        return build_report(ReportInput(DAY, [ch], samples=samples)).channel("E").drained

    fine, low = 500_000_000, 50_000_000
    assert drained(low, [fine] * 4)  # at the end
    assert drained(fine, [low, low, low, fine])  # most samples
    assert not drained(fine, [low, low, fine, fine])  # half is not most
    assert not drained(100_000_000, [100_000_000])  # exactly 10 % is not under 10 %
    assert drained(99_999_999, [])


def test_local_ratio_prefers_the_remote_balance_when_known():
    # Reserves and fees in flight: local + remote is below the capacity.
    ch = ReportChannel("R", "", 1_000_000, 90_000_000, remote_msat=810_000_000)
    r = build_report(ReportInput(DAY, [ch]))
    assert r.channel("R").local_ratio == pytest.approx(0.1)
    assert not r.channel("R").drained and r.balance_buckets[1].channels == 1


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: ReportForward(T, "A", "B", -1, 0, 0), "amt_in_msat"),
        (lambda: ReportForward(T, "A", "B", 1, 1, 1.5), "fee_msat"),
        (lambda: ReportForward(T, "A", "B", 1, 1, 0, "lost"), "status"),
        (lambda: ReportRebalance(T, "A", "B", 1, 0, 1), "ok"),
        (lambda: ReportFeeChange(T, "A", 1, 2, "great"), "outcome"),
        (lambda: ReportFeeChange(T, "A", True, 2), "fee_before_ppm"),
        (lambda: ReportFeeChange(T, "A", 1, 2, node_change="x"), "node_change"),
        (lambda: ReportChannel("A", "", -5, 0), "capacity_sat"),
        (lambda: BalanceSample("A", T, 0, 2, 3), "active_samples"),
        (lambda: BalanceSample("A", T, 0, 0, 0), "samples"),
        (lambda: Period("yearly", 0, 1), "kind"),
        (lambda: Period("daily", 5, 5), "end"),
        (lambda: ReportInput(DAY, [ALICE, ALICE]), "channels"),
        (lambda: build_report(ReportInput(DAY), top_n=-1), "top_n"),
        (lambda: period_bounds("daily", 1.5), "at"),
    ],
)
def test_bad_inputs_name_the_field(build, field):
    with pytest.raises(ValueError, match=f"^{field}:"):
        build()


def test_format_sat_is_exact():
    assert format_sat(0) == "0 sat"
    assert format_sat(1_234_567) == "1,234.567 sat"
    assert format_sat(1_234_500) == "1,234.5 sat"
    assert format_sat(-5_000) == "-5 sat"
    assert format_sat(1) == "0.001 sat"
    assert format_sat(10**18 + 1) == "1,000,000,000,000,000.001 sat"


# -- periods ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "at", "start", "end", "label"),
    [
        # The period that ended at or before `at`: made at midnight, it covers the day before.
        ("daily", utc(2024, 3, 1), utc(2024, 2, 29), utc(2024, 3, 1), "2024-02-29"),
        ("daily", utc(2024, 3, 1, 0, 0, 1), utc(2024, 2, 29), utc(2024, 3, 1), "2024-02-29"),
        ("daily", utc(2024, 2, 29, 23, 59, 59), utc(2024, 2, 28), utc(2024, 2, 29), "2024-02-28"),
        ("daily", utc(2024, 1, 1, 6), utc(2023, 12, 31), utc(2024, 1, 1), "2023-12-31"),
        # ISO weeks start on Monday; 2024-01-01 is a Monday, 2024-01-07 a Sunday.
        ("weekly", utc(2024, 1, 1), utc(2023, 12, 25), utc(2024, 1, 1), "2023-W52"),
        ("weekly", utc(2024, 1, 7, 23, 59, 59), utc(2023, 12, 25), utc(2024, 1, 1), "2023-W52"),
        ("weekly", utc(2024, 1, 8), utc(2024, 1, 1), utc(2024, 1, 8), "2024-W01"),
        ("weekly", utc(2021, 1, 4), utc(2020, 12, 28), utc(2021, 1, 4), "2020-W53"),
        ("weekly", utc(2021, 1, 3, 12), utc(2020, 12, 21), utc(2020, 12, 28), "2020-W52"),
        ("weekly", utc(2024, 3, 4), utc(2024, 2, 26), utc(2024, 3, 4), "2024-W09"),
        # Calendar months, leap years included (2000 is one, 1900 and 2100 are not).
        ("monthly", utc(2024, 3, 1), utc(2024, 2, 1), utc(2024, 3, 1), "2024-02"),
        ("monthly", utc(2023, 3, 15), utc(2023, 2, 1), utc(2023, 3, 1), "2023-02"),
        ("monthly", utc(2024, 1, 1), utc(2023, 12, 1), utc(2024, 1, 1), "2023-12"),
        ("monthly", utc(2024, 1, 31, 23, 59, 59), utc(2023, 12, 1), utc(2024, 1, 1), "2023-12"),
        ("monthly", utc(2000, 3, 1), utc(2000, 2, 1), utc(2000, 3, 1), "2000-02"),
        ("monthly", utc(1900, 3, 2), utc(1900, 2, 1), utc(1900, 3, 1), "1900-02"),
        ("monthly", utc(2100, 3, 1), utc(2100, 2, 1), utc(2100, 3, 1), "2100-02"),
    ],
)
def test_period_bounds(kind, at, start, end, label):
    p = period_bounds(kind, at)
    assert (p.kind, p.start, p.end, p.label) == (kind, start, end, label)


def test_february_lengths():
    def days(year):
        return period_bounds("monthly", utc(year, 3, 1)).seconds // D

    assert [days(y) for y in (2023, 2024, 2000, 1900, 2100)] == [28, 29, 29, 28, 28]


def test_previous_and_next_walk_the_calendar():
    p = period_bounds("monthly", utc(2023, 12, 5))
    assert p.label == "2023-11"
    walked = [p := p.next() for _ in range(4)]
    assert [w.label for w in walked] == ["2023-12", "2024-01", "2024-02", "2024-03"]
    assert [w.seconds // D for w in walked] == [31, 31, 29, 31]
    assert walked[-1].previous().previous() == walked[1]
    week = period_bounds("weekly", utc(2021, 1, 4))
    assert week.next().label == "2021-W01" and week.previous().label == "2020-W52"
    assert DAY.next() == Period("daily", utc(2024, 3, 1), utc(2024, 3, 2))
    assert DAY.previous().label == "2024-02-28"


def test_period_containing_is_the_running_one():
    p = period_containing("weekly", utc(2024, 2, 29, 12))
    assert (p.start, p.end) == (utc(2024, 2, 26), utc(2024, 3, 4))
    february = period_bounds("monthly", utc(2024, 3, 1))
    assert period_containing("monthly", utc(2024, 2, 29)) == february
    assert DAY.contains(T) and not DAY.contains(DAY.end)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["daily", "weekly", "monthly"]), st.integers(-(2**33), 2**33))
def test_period_bounds_properties(kind, at):
    p = period_bounds(kind, at)
    assert p.end <= at < p.next().end  # ended at or before `at`, the next one has not
    assert p.next() == period_containing(kind, at)
    assert p.previous().end == p.start and p.previous().next() == p
    first = dt.datetime.fromtimestamp(p.start, dt.timezone.utc)
    assert (first.hour, first.minute, first.second) == (0, 0, 0)
    if kind == "weekly":
        assert first.weekday() == 0 and p.seconds == 7 * D
    elif kind == "monthly":
        assert first.day == 1
        assert p.seconds == calendar.monthrange(first.year, first.month)[1] * D
    else:
        assert p.seconds == D


# -- properties ---------------------------------------------------------------------------------

IDS = ["a", "b", "c", "d"]
ALL_IDS = [*IDS, "closed"]
amounts = st.integers(0, 10**12)


@st.composite
def node(draw):
    listed = draw(st.lists(st.sampled_from(IDS), unique=True))
    channels = [
        ReportChannel(
            cid,
            draw(st.sampled_from(["", "x", "y"])),
            draw(st.integers(0, 10**8)),
            draw(amounts),
            remote_msat=draw(st.none() | amounts),
        )
        for cid in listed
    ]
    known = draw(st.booleans())
    statuses = ["settled", "failed", "local_failed"] if known else ["settled"]
    forwards = draw(
        st.lists(
            st.builds(
                ReportForward,
                st.integers(DAY.start - H, DAY.end + H),
                st.sampled_from(ALL_IDS),
                st.sampled_from(ALL_IDS),
                amounts,
                amounts,
                st.integers(0, 10**9),
                st.sampled_from(statuses),
            ),
            max_size=30,
        )
    )
    rebalances = draw(
        st.lists(
            st.builds(
                ReportRebalance,
                st.integers(DAY.start - H, DAY.end + H),
                st.sampled_from(ALL_IDS),
                st.sampled_from(ALL_IDS),
                amounts,
                st.integers(0, 10**9),
                st.booleans(),
            ),
            max_size=8,
        )
    )
    samples = draw(
        st.lists(
            st.builds(
                lambda cid, ts, local, n, k: BalanceSample(cid, ts, local, n, min(n, k)),
                st.sampled_from(ALL_IDS),
                st.integers(DAY.start, DAY.end - 1),
                amounts,
                st.integers(1, 60),
                st.integers(0, 60),
            ),
            max_size=20,
        )
    )
    return ReportInput(DAY, channels, forwards, rebalances, (), samples, known)


@settings(max_examples=200, deadline=None)
@given(node())
def test_report_properties(inp):
    r = build_report(inp)
    t, rows = r.totals, r.channels
    assert t.net_profit_msat == t.fees_msat - t.rebalance_cost_msat
    assert sum(c.net_msat for c in rows) == t.net_profit_msat
    assert sum(c.fees_msat for c in rows) == t.fees_msat
    assert sum(c.rebalance_cost_msat for c in rows) == t.rebalance_cost_msat
    assert sum(c.volume_out_msat for c in rows) == t.volume_msat
    assert sum(c.forwards_out for c in rows) == t.forwards == sum(c.forwards_in for c in rows)
    in_period = [f for f in inp.forwards if DAY.contains(f.ts)]
    if inp.failures_known:
        assert sum(c.failed for c in rows) == t.failed
        assert t.forwards + t.failed == len(in_period)
        if in_period:
            assert t.success_ratio == pytest.approx(t.forwards / len(in_period))
    else:
        assert t.failed is None and t.success_ratio is None
    if t.fees_msat > 0:
        assert math.fsum(c.fee_share for c in rows) == pytest.approx(1.0)
        assert r.top_earners and rows[0].channel_id == r.top_earners[0]
    else:
        assert all(c.fee_share == 0.0 for c in rows) and r.top_earners == ()
    assert sum(b.channels for b in r.balance_buckets) == len(inp.channels)
    assert sum(b.capacity_sat for b in r.balance_buckets) == t.capacity_sat
    assert sum(b.local_msat for b in r.balance_buckets) == t.local_msat
    assert {c.channel_id for c in rows if c.listed} == {c.channel_id for c in inp.channels}
    assert set(r.idle) <= {c.channel_id for c in inp.channels}
    for c in rows:
        assert c.uptime is None or 0.0 <= c.uptime <= 1.0
    assert Report.from_dict(json.loads(json.dumps(r.to_dict()))) == r
