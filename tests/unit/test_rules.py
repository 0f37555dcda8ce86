"""Admin fee rules: the condition language, actions, matching order and error messages."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.metrics import ChannelMetrics, FlowWindow, NetworkContext, PeerInfo
from engine.node_source import RoutingPolicy
from engine.rules import (
    METRICS,
    NUMBER,
    STRING,
    Action,
    And,
    Compare,
    InList,
    Not,
    Or,
    Rule,
    RuleError,
    apply_rule,
    evaluate,
    first_match,
    parse_rules,
    rules_to_doc,
)

PEER = "02" + "a" * 64
OTHER = "03" + "b" * 64


def chan(ratio: float = 0.12, capacity: int = 1_000_000, **kw: Any) -> ChannelMetrics:
    local = round(capacity * 1000 * ratio)
    fields: dict[str, Any] = {
        "channel_id": "800000x1x0",
        "peer_id": PEER,
        "peer_alias": "alice",
        "capacity_sat": capacity,
        "local_msat": local,
        "remote_msat": capacity * 1000 - local,
        "active": True,
        "age_days": 100.0,
        "local_policy": RoutingPolicy(1000, 500, 40, 1000, 990_000_000),
        "remote_policy": RoutingPolicy(0, 200, 40, 1000, 990_000_000),
        "windows": {
            7: FlowWindow(
                7,
                forwards_out=12,
                forwards_in=3,
                volume_out_msat=2_500_000,
                volume_in_msat=700_999,
                fees_msat=15_500,
                failed_out=2,
            ),
        },
    }
    fields.update(kw)
    return ChannelMetrics(**fields)


def net(**kw: Any) -> NetworkContext:
    fields: dict[str, Any] = {
        "graph_available": True,
        "peers": {PEER: PeerInfo(40, 250_000_000, 350, 5)},
        "onchain_feerate_sat_vb": 10,
    }
    fields.update(kw)
    return NetworkContext(**fields)


def rule(name: Any = "r", when: Any = "", action: Any = None, **kw: Any) -> dict:
    doc: dict[str, Any] = {"name": name, "when": when, "action": action or {"type": "leave_alone"}}
    doc.update(kw)
    return doc


def one(when: str = "", action: dict | None = None, **kw: Any) -> Rule:
    return parse_rules([rule("r", when, action, **kw)])[0]


def matched(rules: list[Rule], ch: ChannelMetrics, ctx: NetworkContext) -> str | None:
    found = first_match(rules, ch, ctx)
    return None if found is None else found.name


def holds(when: str, ch: ChannelMetrics | None = None, ctx: NetworkContext | None = None) -> bool:
    return evaluate(one(when).condition, ch or chan(), ctx or net())


# -- conditions --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ("", True),
        ("always", True),
        ("   ", True),
        ("ratio < 0.2", True),
        ("ratio < 0.12", False),
        ("ratio <= 0.12", True),
        ("ratio > 0.119 and ratio >= 0.12", True),
        ("capacity >= 1_000_000", True),
        ("capacity > 1_000_000", False),
        ("local == 120000 and remote == 880000", True),
        ("age_days >= 100", True),
        ("active", True),
        ("not active", False),
        ("active == false", False),
        ("active != false", True),
        ("peer_disabled", False),
        ("not peer_disabled", True),
        ('alias == "alice"', True),
        ('alias != "alice"', False),
        ('alias in ["bob", "alice"]', True),
        ('alias not in ["bob", "alice",]', False),
        (f'peer in ["{OTHER}", "{PEER}"]', True),
        ('channel == "800000x1x0"', True),
        ("forwards_7d == 12 and forwards_in_7d == 3", True),
        ("forwards_1d == 0 and forwards_30d == 0", True),  # windows not measured read as 0
        ("fees_7d == 15.5 and failed_7d == 2", True),
        ("sats_out_7d == 2500 and sats_in_7d == 700", True),
        ("fee_ppm == 500 and base_fee_msat == 1000", True),
        ("peer_fee_ppm == 200 and peer_base_fee_msat == 0", True),
        ("competitor_fee_ppm == 350", True),
        ("peer_channels > 39 and peer_capacity == 250_000_000", True),
        ("onchain_feerate == 10", True),
        ("capacity in [1, 1_000_000]", True),
        ("capacity not in [1, 2]", True),
        ("ratio < 0.1 or capacity > 500000", True),
        ("ratio < 0.1 or capacity > 5000000", False),
        ("(ratio < 0.1 or capacity > 500000) and not peer_disabled", True),
        ("not (ratio < 0.2 and active)", False),
        ("not not active", True),
        ('ratio < 0.2 and capacity > 1 or alias == "x"', True),  # and binds tighter
        ('alias == "x" and ratio < 0.2 or capacity > 1', True),
        ('alias == "x" and (ratio < 0.2 or capacity > 1)', False),
        ("ratio > -1 and ratio < 1.5", True),
        ('alias == "a\\"b" or alias == "c\\\\d"', False),
    ],
)
def test_condition(when: str, expected: bool) -> None:
    assert holds(when) is expected


def test_null_metrics_make_comparisons_false() -> None:
    ch = chan(peer_id=OTHER, local_policy=None, remote_policy=None)  # unknown peer, no policies
    ctx = net()
    for when in (
        "competitor_fee_ppm > 0",
        "competitor_fee_ppm <= 0",
        "competitor_fee_ppm == 350",
        "competitor_fee_ppm != 350",
        "competitor_fee_ppm in [350]",
        "competitor_fee_ppm not in [350]",
        "peer_channels >= 0",
        "peer_capacity < 10",
        "fee_ppm >= 0",
        "base_fee_msat >= 0",
        "peer_fee_ppm >= 0",
        "peer_disabled",
        "peer_disabled == false",
    ):
        assert holds(when, ch, ctx) is False, when
    assert holds("not competitor_fee_ppm > 0", ch, ctx) is True
    assert holds("not peer_disabled", ch, ctx) is True
    # a graph-less context: the peer is unknown as well
    assert holds("peer_channels > 0", chan(), net(peers={}, graph_available=False)) is False
    assert holds("competitor_fee_ppm > 0", chan(), net()) is True


def test_parse_tree_shape() -> None:
    cond = one('not (ratio < 0.2 and active) or alias in ["a", "b"] or capacity != 5').condition
    assert cond == Or(
        (
            Not(And((Compare("ratio", "<", 0.2), Compare("active", "==", True)))),
            InList("alias", ("a", "b"), False),
            Compare("capacity", "!=", 5),
        )
    )
    assert one("capacity >= 1_000_000").condition == Compare("capacity", ">=", 1_000_000)
    assert one("peer_channels not in [1, 2.5]").condition == InList("peer_channels", (1, 2.5), True)


# -- actions and outcomes ---------------------------------------------------------------

PROPORTIONAL = {"type": "proportional", "min_fee_ppm": 100, "max_fee_ppm": 1000}


@pytest.mark.parametrize(
    ("ratio", "ppm"),
    [
        (0.0, 1000),
        (1.0, 100),
        (0.5, 550),
        (0.12, 892),  # 100 + 0.88 * 900 = 892
        (0.25, 775),
        (0.9, 190),
        (0.333, 700),  # 100 + 0.667 * 900 = 700.3
        (0.8765, 211),  # 100 + 0.1235 * 900 = 211.15
    ],
)
def test_proportional(ratio: float, ppm: int) -> None:
    out = apply_rule(one("", PROPORTIONAL), chan(ratio=ratio), net())
    assert out.fee_ppm == ppm
    assert not out.leave_alone
    assert out.base_fee_msat is None


def test_proportional_reason_and_half_up_rounding() -> None:
    r = parse_rules([rule("drained", "ratio < 0.2", PROPORTIONAL)])[0]
    out = apply_rule(r, chan(ratio=0.12), net())
    assert out.rule == "drained"
    assert out.reason == (
        "rule 'drained' (ratio < 0.2): proportional 100-1000 ppm at ratio 0.12 -> 892 ppm"
    )
    # 0 + 0.5 * 5 = 2.5 rounds up to 3 (not to the even 2)
    half = one("", {"type": "proportional", "min_fee_ppm": 0, "max_fee_ppm": 5})
    assert apply_rule(half, chan(ratio=0.5), net()).fee_ppm == 3
    # an empty channel (no balance at all) reads as ratio 0: the maximum
    empty = chan(local_msat=0, remote_msat=0)
    assert apply_rule(one("", PROPORTIONAL), empty, net()).fee_ppm == 1000


def test_cost() -> None:
    # open fee estimate: 10 sat/vB x 154 vB = 1540 sat
    r = one("", {"type": "cost", "cost_factor": 1.5})
    out = apply_rule(r, chan(capacity=2_000_000), net())
    assert out.fee_ppm == 1155  # 1.5 * 1e6 * 1540 / 2_000_000
    assert out.reason == (
        "rule 'r' (always): cost factor 1.5 x estimated funding fee 1540 sat "
        "(10 sat/vB x 154 vB) / 2000000 sat capacity -> 1155 ppm"
    )
    default = one("", {"type": "cost"})
    assert default.action.cost_factor == 1.0
    assert apply_rule(default, chan(capacity=1_000_000), net()).fee_ppm == 1540
    assert apply_rule(default, chan(capacity=3_000_000), net()).fee_ppm == 513  # 513.33
    # 1000 sat/vB on a 100k channel: 1_540_000 ppm, capped at the maximum
    capped = apply_rule(default, chan(capacity=100_000), net(onchain_feerate_sat_vb=1000))
    assert capped.fee_ppm == 100_000
    assert "capped at 100000 ppm" in capped.reason


def test_pin_and_static_with_extras() -> None:
    action = {
        "type": "pin",
        "fee_ppm": 750,
        "base_fee_msat": 0,
        "inbound_fee_ppm": -50,
        "inbound_base_fee_msat": -100,
        "max_htlc_msat": 500_000_000,
    }
    out = apply_rule(one("capacity > 0", action), chan(), net())
    assert (out.fee_ppm, out.base_fee_msat) == (750, 0)
    assert (out.inbound_fee_ppm, out.inbound_base_fee_msat) == (-50, -100)
    assert out.max_htlc_msat == 500_000_000
    assert out.reason == (
        "rule 'r' (capacity > 0): pin 750 ppm, base 0 msat, inbound -50 ppm, "
        "inbound base -100 msat, max_htlc 500000000 msat"
    )
    static = apply_rule(one("", {"type": "static", "fee_ppm": 10}), chan(), net())
    assert (static.fee_ppm, static.base_fee_msat, static.inbound_fee_ppm) == (10, None, None)
    assert static.reason == "rule 'r' (always): static 10 ppm"


def test_leave_alone() -> None:
    out = apply_rule(one("active"), chan(), net())
    assert out.leave_alone
    assert out.fee_ppm is None and out.base_fee_msat is None and out.max_htlc_msat is None
    assert out.reason == "rule 'r' (active): leave alone; Daznode does not touch this channel"


def test_long_condition_is_shortened_in_the_reason() -> None:
    when = "peer in [" + ", ".join(f'"{OTHER}"' for _ in range(5)) + f', "{PEER}"]'
    out = apply_rule(one(when), chan(), net())
    assert len(out.reason) < 160 and "..." in out.reason


# -- order ------------------------------------------------------------------------------


def pin(ppm: int) -> dict:
    return {"type": "pin", "fee_ppm": ppm}


def test_priority_orders_rules_and_ties_keep_list_order() -> None:
    rules = parse_rules(
        [
            rule("low", "", pin(1), priority=-5),
            rule("a", "", pin(2)),
            rule("top", "ratio > 0.5", pin(3), priority=10),
            rule("b", "", pin(4)),
            rule("mid", "", pin(5), priority=5),
        ]
    )
    assert [r.name for r in rules] == ["top", "mid", "a", "b", "low"]
    assert matched(rules, chan(ratio=0.9), net()) == "top"
    assert matched(rules, chan(ratio=0.1), net()) == "mid"
    # first_match sorts by priority itself, whatever order it is given
    assert matched(list(reversed(rules)), chan(ratio=0.9), net()) == "top"


def test_first_match_wins_and_disabled_rules_are_skipped() -> None:
    rules = parse_rules(
        [
            rule("off", "", pin(1), enabled=False),
            rule("drained", "ratio < 0.2", pin(2)),
            rule("small", "capacity < 2_000_000", pin(3)),
            rule("fallback", "always", pin(4)),
        ]
    )
    assert matched(rules, chan(ratio=0.1), net()) == "drained"
    assert matched(rules, chan(ratio=0.5), net()) == "small"
    big = chan(ratio=0.5, capacity=5_000_000)
    assert matched(rules, big, net()) == "fallback"
    assert first_match(rules[1:3], big, net()) is None
    assert first_match([], big, net()) is None


# -- validation -------------------------------------------------------------------------

# (document, substrings the message must contain)
BAD: list[tuple[object, list[str]]] = [
    ({"name": "r"}, ["rules: expected a list of rule objects, got an object"]),
    ("rules", ["expected a list", "got a string"]),
    (None, ["expected a list", "got null"]),
    (["r"], ["rule at index 0: must be an object, got a string"]),
    ([{"when": "", "action": {"type": "leave_alone"}}], ["rule at index 0 (name): missing"]),
    ([rule("x" * 65)], ["rule at index 0 (name): must be a string of 1-64 characters"]),
    ([rule("")], ["rule at index 0 (name)"]),
    ([rule("   ")], ["rule at index 0 (name)"]),
    ([rule(5)], ["rule at index 0 (name)", "got 5"]),
    ([rule("a"), rule("b"), rule("a")], ["rule 'a' (name): duplicate name", "index 0"]),
    ([{**rule("r"), "prio": 1}], ["rule 'r': unknown field 'prio'", "allowed fields"]),
    ([rule(priority="high")], ["rule 'r' (priority): must be an integer", "'high'"]),
    ([rule(priority=True)], ["rule 'r' (priority)"]),
    ([rule(priority=10**7)], ["rule 'r' (priority)", "10000000"]),
    ([rule(enabled="yes")], ["rule 'r' (enabled): must be true or false"]),
    ([rule(when=5)], ["rule 'r' (when): must be a string, got a number"]),
    (
        [rule(when="ratoi < 0.2")],
        [
            "rule 'r' (when): unknown metric 'ratoi' at column 1",
            "did you mean 'ratio'",
            "known metrics: active, age_days",
        ],
    ),
    ([rule(when="ratio = 0.2")], ["rule 'r' (when): unexpected character '=' at column 7", "=="]),
    ([rule(when="ratio => 0.2")], ["(when): unexpected character '=' at column 7"]),
    ([rule(when="ratio <> 0.2")], ["(when): expected a value", "after '<' at column 8", "got '>'"]),
    ([rule(when="ratio ~ 0.2")], ["(when): unexpected character '~' at column 7"]),
    ([rule(when="ratio < 0.2 && active")], ["(when): unexpected character '&' at column 13"]),
    (
        [rule(when="(ratio < 0.2")],
        [
            "(when): expected ')' to close the '(' at column 1",
            "got the end of the condition at column 13",
        ],
    ),
    ([rule(when="((ratio < 0.2) or active")], ["expected ')' to close the '(' at column 1"]),
    ([rule(when="ratio < 0.2)")], ["(when): unmatched ')' at column 12"]),
    ([rule(when="()")], ["(when): expected a metric, 'not' or '(' at column 2, got ')'"]),
    (
        [rule(when="ratio < 0.2 capacity > 5")],
        ["(when): unexpected 'capacity' at column 13", "expected 'and', 'or' or the end"],
    ),
    (
        [rule(when="ratio < 0.2 and")],
        ["(when): expected a metric, 'not' or '(' at column 16", "got the end of the condition"],
    ),
    ([rule(when="and ratio < 0.2")], ["(when): expected a metric", "column 1, got 'and'"]),
    ([rule(when="ratio")], ["(when): expected a comparison operator", "after 'ratio'", "column 6"]),
    (
        [rule(when="ratio <")],
        ["(when): expected a value", "column 8", "got the end of the condition"],
    ),
    ([rule(when="ratio < low")], ["(when): expected a value", "got 'low'"]),
    (
        [rule(when='ratio < "low"')],
        ["(when): cannot compare number metric 'ratio' with string \"low\" at column 9"],
    ),
    ([rule(when="alias == 3")], ["(when): cannot compare string metric 'alias' with number 3"]),
    ([rule(when="active == 1")], ["(when): cannot compare boolean metric 'active' with number"]),
    ([rule(when="ratio == true")], ["cannot compare number metric 'ratio' with boolean true"]),
    (
        [rule(when='alias < "b"')],
        ["(when): operator '<' at column 7 does not apply to string metric 'alias'"],
    ),
    ([rule(when="active >= true")], ["operator '>=' at column 8 does not apply to boolean"]),
    ([rule(when="peer in []")], ["(when): empty list at column 9"]),
    (
        [rule(when='capacity in [1, "x"]')],
        ["(when): cannot compare number metric 'capacity' with string \"x\" at column 17"],
    ),
    ([rule(when="capacity in 5")], ["(when): expected '[' to start the list", "column 13"]),
    ([rule(when="capacity in [1 2]")], ["(when): expected ',' or ']'", "got number 2"]),
    ([rule(when="capacity in [1,")], ["(when): expected a value", "the end of the condition"]),
    ([rule(when="capacity not [1]")], ["(when): expected a comparison operator"]),
    ([rule(when="ratio < 1__0")], ["(when): malformed number '1__0' at column 9"]),
    ([rule(when="ratio < 0.2and active")], ["(when): malformed number '0.2and'"]),
    ([rule(when="ratio < .5")], ["(when): unexpected character '.' at column 9"]),
    ([rule(when='alias == "bob')], ["(when): unterminated string starting at column 10"]),
    ([rule(when='alias == "a\\n"')], ["(when): unknown escape '\\n'"]),
    ([rule(when="not")], ["(when): expected a metric", "the end of the condition"]),
    ([rule(when="true")], ["(when): expected a metric, 'not' or '(' at column 1, got 'true'"]),
    ([rule(when="Ratio < 1")], ["unknown metric 'Ratio'", "did you mean 'ratio'"]),
    ([rule(when="ratio < 0.2 AND active")], ["unexpected 'AND' at column 13"]),
    ([rule(when="(" * 60 + "active" + ")" * 60)], ["(when): nested more than 50 levels"]),
    ([rule(when="not " * 60 + "active")], ["(when): nested more than 50 levels"]),
    ([rule(when="active or " * 3000 + "active")], ["(when): condition is", "the limit is"]),
    ([rule(when="ratio < 0.2\u00a0and ratio \u2264 1")], ["unexpected character '≤' at column 23"]),
    ([{"name": "r", "when": ""}], ["rule 'r' (action): missing"]),
    ([rule(action="pin")], ["rule 'r' (action): must be an object", "got a string"]),
    ([rule(action={"fee_ppm": 5})], ["rule 'r' (action): missing 'type'", "pin, static"]),
    (
        [rule(action={"type": "boost"})],
        [
            "rule 'r' (action): unknown action type 'boost'",
            "expected one of: pin, static, proportional, cost",
        ],
    ),
    ([rule(action={"type": 3})], ["rule 'r' (action): unknown action type 3"]),
    (
        [rule(action={"type": "pin", "fee_ppm": 1, "fee": 2})],
        ["rule 'r' (action): unknown field 'fee' for action 'pin'", "allowed: type, fee_ppm"],
    ),
    (
        [rule(action={"type": "leave_alone", "fee_ppm": 1})],
        ["unknown field 'fee_ppm' for action 'leave_alone'"],
    ),
    ([rule(action={"type": "cost", "fee_ppm": 1})], ["unknown field 'fee_ppm' for action 'cost'"]),
    (
        [rule(action={"type": "pin", "min_fee_ppm": 1})],
        ["unknown field 'min_fee_ppm' for action 'pin'"],
    ),
    ([rule(action={"type": "pin"})], ["rule 'r' (action): action 'pin' needs field 'fee_ppm'"]),
    (
        [rule(action={"type": "proportional", "min_fee_ppm": 1})],
        ["action 'proportional' needs field 'max_fee_ppm'"],
    ),
    (
        [rule(action={"type": "proportional", "min_fee_ppm": 500, "max_fee_ppm": 100})],
        ["rule 'r' (action): min_fee_ppm (500) is greater than max_fee_ppm (100)"],
    ),
    (
        [rule(action={"type": "pin", "fee_ppm": -1})],
        ["rule 'r' (action): field 'fee_ppm' must be an integer from 0 to 100000, got -1"],
    ),
    ([rule(action={"type": "static", "fee_ppm": 100_001})], ["field 'fee_ppm'", "100001"]),
    ([rule(action={"type": "pin", "fee_ppm": 1.5})], ["field 'fee_ppm' must be an integer"]),
    ([rule(action={"type": "pin", "fee_ppm": True})], ["field 'fee_ppm' must be an integer"]),
    ([rule(action={"type": "pin", "fee_ppm": "5"})], ["field 'fee_ppm'", "'5'"]),
    (
        [rule(action={"type": "pin", "fee_ppm": 5, "base_fee_msat": 10_000_001})],
        ["field 'base_fee_msat' must be an integer from 0 to 10000000"],
    ),
    ([rule(action={"type": "pin", "fee_ppm": 5, "base_fee_msat": -1})], ["'base_fee_msat'"]),
    (
        [rule(action={"type": "pin", "fee_ppm": 5, "inbound_fee_ppm": 5})],
        ["field 'inbound_fee_ppm' must be an integer from -100000 to 0, got 5"],
    ),
    (
        [rule(action={"type": "pin", "fee_ppm": 5, "inbound_base_fee_msat": 1})],
        ["field 'inbound_base_fee_msat'"],
    ),
    (
        [rule(action={"type": "pin", "fee_ppm": 5, "max_htlc_msat": 0})],
        ["field 'max_htlc_msat' must be an integer from 1"],
    ),
    (
        [rule(action={"type": "proportional", "min_fee_ppm": -5, "max_fee_ppm": 5})],
        ["field 'min_fee_ppm'"],
    ),
    ([rule(action={"type": "cost", "cost_factor": 0})], ["field 'cost_factor' must be a number"]),
    ([rule(action={"type": "cost", "cost_factor": -1})], ["'cost_factor'"]),
    ([rule(action={"type": "cost", "cost_factor": 101})], ["'cost_factor'", "at most 100"]),
    ([rule(action={"type": "cost", "cost_factor": math.nan})], ["'cost_factor'"]),
    ([rule(action={"type": "cost", "cost_factor": "1"})], ["'cost_factor'"]),
    ([rule(action={"type": "cost", "cost_factor": False})], ["'cost_factor'"]),
]


@pytest.mark.parametrize(("doc", "expected"), BAD, ids=[str(i) for i in range(len(BAD))])
def test_malformed(doc: object, expected: list[str]) -> None:
    with pytest.raises(RuleError) as info:
        parse_rules(doc)
    message = str(info.value)
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"
    assert isinstance(info.value, ValueError)


def test_all_errors_reported_by_priority_then_list_order() -> None:
    doc = [
        rule("ok", "ratio < 0.5"),
        rule("bad-low", "ratoi < 1", priority=-1),
        rule("bad-a", "ratio <"),
        "not a rule",
        rule("bad-top", "", {"type": "nope"}, priority=7),
        rule("ok2", "active"),
        rule("bad-a", "active"),  # duplicate name
    ]
    with pytest.raises(RuleError) as info:
        parse_rules(doc)
    errors = info.value.errors
    assert [e.split(" (")[0].split(":")[0] for e in errors] == [
        "rule 'bad-top'",
        "rule 'bad-a'",
        "rule at index 3",
        "rule 'bad-a'",
        "rule 'bad-low'",
    ]
    assert "duplicate name" in errors[3]
    assert str(info.value) == "\n".join(errors)
    assert "'ok'" not in str(info.value)


def test_exact_message() -> None:
    with pytest.raises(RuleError) as info:
        parse_rules([rule("drained", "ratoi < 0.2", PROPORTIONAL)])
    assert str(info.value) == (
        "rule 'drained' (when): unknown metric 'ratoi' at column 1 (did you mean 'ratio'?); "
        f"known metrics: {', '.join(sorted(METRICS))}"
    )


# -- round trip -------------------------------------------------------------------------


def test_round_trip_and_defaults() -> None:
    doc = [
        rule("p", "ratio < 0.2", PROPORTIONAL | {"base_fee_msat": 0}),
        rule("c", "", {"type": "cost"}, priority=3, enabled=False),
        {"name": "l", "action": {"type": "leave_alone"}},
    ]
    rules = parse_rules(doc)
    out = rules_to_doc(rules)
    assert out == [
        {
            "name": "c",
            "priority": 3,
            "when": "",
            "action": {"type": "cost", "cost_factor": 1.0},
            "enabled": False,
        },
        {
            "name": "p",
            "priority": 0,
            "when": "ratio < 0.2",
            "action": PROPORTIONAL | {"base_fee_msat": 0},
            "enabled": True,
        },
        {
            "name": "l",
            "priority": 0,
            "when": "",
            "action": {"type": "leave_alone"},
            "enabled": True,
        },
    ]
    assert parse_rules(out) == rules
    assert rules[0].action == Action("cost", cost_factor=1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        rules[0].name = "x"  # type: ignore[misc]


# -- properties -------------------------------------------------------------------------

FRAGMENTS = [
    "ratio",
    "capacity",
    "active",
    "alias",
    "peer_channels",
    "competitor_fee_ppm",
    "and",
    "or",
    "not",
    "in",
    "(",
    ")",
    "[",
    "]",
    ",",
    "<",
    "<=",
    ">",
    ">=",
    "==",
    "!=",
    "=",
    "0.5",
    "1_000",
    "-3",
    '"x"',
    '"',
    "true",
    "false",
    "always",
    "1__2",
    "\\",
    "ratoi",
    "",
    "\n",
]


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=120) | st.lists(st.sampled_from(FRAGMENTS), max_size=25).map(" ".join))
def test_parser_raises_only_rule_errors(when: str) -> None:
    try:
        parse_rules([rule("fuzz", when)])
    except RuleError as e:
        assert str(e).startswith("rule 'fuzz' (when): ")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
rule_like = st.fixed_dictionaries(
    {},
    optional={
        "name": st.text(max_size=70) | json_values,
        "priority": st.integers() | json_values,
        "when": st.sampled_from(["", "ratio < 0.5", "ratio <"]) | json_values,
        "action": st.fixed_dictionaries(
            {"type": st.sampled_from(["pin", "static", "proportional", "cost", "leave_alone"])},
            optional={
                k: st.integers(-10, 10**6) | json_values
                for k in (
                    "fee_ppm",
                    "min_fee_ppm",
                    "max_fee_ppm",
                    "cost_factor",
                    "base_fee_msat",
                    "inbound_fee_ppm",
                    "max_htlc_msat",
                )
            },
        )
        | json_values,
        "enabled": st.booleans() | json_values,
    },
)


@settings(max_examples=300, deadline=None)
@given(st.lists(rule_like, max_size=5) | json_values)
def test_documents_raise_only_rule_errors(doc: object) -> None:
    try:
        rules = parse_rules(doc)
    except RuleError:
        return
    assert parse_rules(rules_to_doc(rules)) == rules


# conditions generated together with what they mean: (text, predicate over metric values)
Pred = Callable[[dict[str, Any]], bool]
NUMERIC = sorted(m for m, (kind, _, _) in METRICS.items() if kind == NUMBER)
STRINGS = sorted(m for m, (kind, _, _) in METRICS.items() if kind == STRING)
OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


def _cmp(metric: str, op: str, value: Any) -> Pred:
    return lambda v: v[metric] is not None and OPS[op](v[metric], value)


def _inlist(metric: str, values: list[Any], negated: bool) -> Pred:
    return lambda v: v[metric] is not None and ((v[metric] in values) != negated)


numbers = st.integers(-2_000_000, 2_000_000) | st.sampled_from([0, 1, 12, 100, 350, 500])
words = st.sampled_from(["alice", "bob", PEER, OTHER, "800000x1x0", ""])
comparisons = st.one_of(
    st.builds(
        lambda m, op, n: (f"{m} {op} {n}", _cmp(m, op, n)),
        st.sampled_from(NUMERIC),
        st.sampled_from(list(OPS)),
        numbers,
    ),
    st.builds(
        lambda m, op, n: (f"{m} {op} {n / 100}", _cmp(m, op, n / 100)),
        st.sampled_from(["ratio", "age_days", "fees_7d"]),
        st.sampled_from(list(OPS)),
        st.integers(-10, 20_000),
    ),
    st.builds(
        lambda m, op, w: (f'{m} {op} "{w}"', _cmp(m, op, w)),
        st.sampled_from(STRINGS),
        st.sampled_from(["==", "!="]),
        words,
    ),
    st.builds(
        lambda m, ws, neg: (
            f"{m} {'not in' if neg else 'in'} [{', '.join(chr(34) + w + chr(34) for w in ws)}]",
            _inlist(m, ws, neg),
        ),
        st.sampled_from(STRINGS),
        st.lists(words, min_size=1, max_size=3),
        st.booleans(),
    ),
    st.builds(
        lambda m, ns, neg: (
            f"{m} {'not in' if neg else 'in'} [{', '.join(map(str, ns))}]",
            _inlist(m, ns, neg),
        ),
        st.sampled_from(NUMERIC),
        st.lists(numbers, min_size=1, max_size=3),
        st.booleans(),
    ),
    st.sampled_from(["active", "peer_disabled"]).map(lambda m: (m, _cmp(m, "==", True))),
    st.builds(
        lambda m, b: (f"{m} == {str(b).lower()}", _cmp(m, "==", b)),
        st.sampled_from(["active", "peer_disabled"]),
        st.booleans(),
    ),
)


def _and(a: tuple[str, Pred], b: tuple[str, Pred]) -> tuple[str, Pred]:
    return f"({a[0]}) and ({b[0]})", lambda v: a[1](v) and b[1](v)


def _or(a: tuple[str, Pred], b: tuple[str, Pred]) -> tuple[str, Pred]:
    return f"({a[0]}) or ({b[0]})", lambda v: a[1](v) or b[1](v)


def _not(a: tuple[str, Pred]) -> tuple[str, Pred]:
    return f"not ({a[0]})", lambda v: not a[1](v)


conditions = st.recursive(
    comparisons,
    lambda inner: st.one_of(
        st.builds(_and, inner, inner), st.builds(_or, inner, inner), st.builds(_not, inner)
    ),
    max_leaves=8,
)
channels = st.builds(
    lambda ratio, cap, active, peer, fwd, policies, feerate: (
        chan(
            ratio=ratio,
            capacity=cap,
            active=active,
            peer_id=peer,
            windows={7: FlowWindow(7, forwards_out=fwd, fees_msat=fwd * 1001)},
            **({} if policies else {"local_policy": None, "remote_policy": None}),
        ),
        net(onchain_feerate_sat_vb=feerate),
    ),
    st.sampled_from([0.0, 0.12, 0.5, 0.9, 1.0]),
    st.sampled_from([20_000, 1_000_000, 5_000_000]),
    st.booleans(),
    st.sampled_from([PEER, OTHER]),
    st.integers(0, 20),
    st.booleans(),
    st.integers(1, 600),
)


@settings(max_examples=400, deadline=None)
@given(conditions, channels)
def test_evaluation_matches_meaning(cond: tuple[str, Pred], env: tuple) -> None:
    text, meaning = cond
    ch, ctx = env
    values = {name: getter(ch, ctx) for name, (_, getter, _) in METRICS.items()}
    assert evaluate(one(text).condition, ch, ctx) is meaning(values)


actions = st.one_of(
    st.builds(
        lambda t, p, b: {"type": t, "fee_ppm": p} | ({"base_fee_msat": b} if b else {}),
        st.sampled_from(["pin", "static"]),
        st.integers(0, 100_000),
        st.integers(0, 10_000_000),
    ),
    st.builds(
        lambda a, b: {"type": "proportional", "min_fee_ppm": min(a, b), "max_fee_ppm": max(a, b)},
        st.integers(0, 100_000),
        st.integers(0, 100_000),
    ),
    st.builds(
        lambda f, i, h: (
            {"type": "cost", "inbound_fee_ppm": i, "max_htlc_msat": h}
            | ({"cost_factor": f} if f else {})
        ),
        st.floats(0.01, 100) | st.none(),
        st.integers(-100_000, 0),
        st.integers(1, 10**12),
    ),
    st.just({"type": "leave_alone"}),
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.text(min_size=1, max_size=64).filter(lambda s: not s.isspace()),
            st.integers(-1_000_000, 1_000_000) | st.none(),
            conditions,
            actions,
            st.booleans() | st.none(),
        ),
        max_size=6,
        unique_by=lambda t: t[0],
    )
)
def test_round_trip(items: list) -> None:
    doc = []
    for name, priority, (when, _), action, enabled in items:
        d: dict[str, Any] = {"name": name, "when": when, "action": action}
        if priority is not None:
            d["priority"] = priority
        if enabled is not None:
            d["enabled"] = enabled
        doc.append(d)
    rules = parse_rules(doc)
    again = parse_rules(rules_to_doc(rules))
    assert again == rules
    assert rules_to_doc(again) == rules_to_doc(rules)
    priorities = [r.priority for r in rules]
    assert priorities == sorted(priorities, reverse=True)
