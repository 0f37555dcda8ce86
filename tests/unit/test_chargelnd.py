"""Importing charge-lnd config files as Daznode rules."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.chargelnd import import_chargelnd
from engine.metrics import ChannelMetrics, FlowWindow, NetworkContext, PeerInfo
from engine.node_source import RoutingPolicy
from engine.rules import And, Compare, RuleError, apply_rule, first_match, parse_rules

A = "02" + "a" * 64
B = "03" + "b" * 64
C = "03" + "c" * 64

# Modelled on the README and examples/ of github.com/accumulator/charge-lnd.
SAMPLE = f"""\
# charge-lnd policies for a small routing node
# (first matching policy wins; [default] applies to the rest)

[default]
strategy = proportional
base_fee_msat = 1000
min_fee_ppm = 100
max_fee_ppm = 300
min_fee_ppm_delta = 10

[mydefaults]
# no strategy: defaults for the policies below
base_fee_msat = 1_000
min_fee_ppm_delta = 10

[congestion]
# high on-chain fees: a larger base fee for the policies below
onchain.min_fee_rate = 100
base_fee_msat = 5_000

[friends]
node.id = {A},
  {B.upper()}
strategy = static
base_fee_msat = 10
fee_ppm = 10

[hands-off]
node.id = {C}
strategy = ignore

[discourage-routing-out-of-balance]
chan.max_ratio = 0.1
chan.min_capacity = 250000
strategy = static
base_fee_msat = 10000
fee_ppm = 500
inbound_base_fee_msat = -8000
inbound_fee_ppm = -400

[encourage-routing-to-balance]
chan.min_ratio = 0.9
chan.min_capacity = 250000
strategy = static
base_fee_msat = 1
fee_ppm = 2

[new-channels]
chan.max_age = 1008
strategy = static
fee_ppm = 1500
time_lock_delta = 80

[idle]
chan.activity_period = 7d
chan.max_htlcs_out = 0
strategy = static
fee_ppm = 50
max_htlc_msat = 100_000_000

[recover-cost]
chan.min_capacity = 5_000_000
chan.initiator = true
strategy = cost
cost_factor = 1.5

[expensive]
chan.min_fee_ppm = 8_000
strategy = match_peer

[micropayments]
chan.id = 636374x680x1, 769658139449753601
strategy = static
fee_ppm = 10
min_htlc_msat = 1000
"""

MICRO = 'channel in ["636374x680x1", "700000x100x1"]'
EXPECTED_RULES: list[dict[str, Any]] = [
    {
        "name": "friends",
        "when": f'peer in ["{A}", "{B}"]',
        "priority": 130,
        "enabled": True,
        "action": {"type": "static", "fee_ppm": 10, "base_fee_msat": 10},
    },
    {
        "name": "hands-off",
        "when": f'peer in ["{C}"]',
        "priority": 120,
        "enabled": True,
        "action": {"type": "leave_alone"},
    },
    {
        "name": "discourage-routing-out-of-balance",
        "when": "ratio <= 0.1 and capacity >= 250000",
        "priority": 110,
        "enabled": True,
        "action": {
            "type": "static",
            "fee_ppm": 500,
            "base_fee_msat": 10000,
            "inbound_fee_ppm": -400,
            "inbound_base_fee_msat": -8000,
        },
    },
    {
        "name": "encourage-routing-to-balance",
        "when": "ratio >= 0.9 and capacity >= 250000",
        "priority": 100,
        "enabled": True,
        "action": {"type": "static", "fee_ppm": 2, "base_fee_msat": 1},
    },
    {
        "name": "new-channels + congestion",
        "when": "age_days <= 7 and onchain_feerate >= 100",
        "priority": 90,
        "enabled": True,
        "action": {"type": "static", "fee_ppm": 1500, "base_fee_msat": 5000},
    },
    {
        "name": "new-channels",
        "when": "age_days <= 7",
        "priority": 80,
        "enabled": True,
        "action": {"type": "static", "fee_ppm": 1500, "base_fee_msat": 1000},
    },
    {
        "name": "idle + congestion",
        "when": "age_days >= 7 and forwards_7d <= 0 and onchain_feerate >= 100",
        "priority": 70,
        "enabled": True,
        "action": {
            "type": "static",
            "fee_ppm": 50,
            "base_fee_msat": 5000,
            "max_htlc_msat": 100_000_000,
        },
    },
    {
        "name": "idle",
        "when": "age_days >= 7 and forwards_7d <= 0",
        "priority": 60,
        "enabled": True,
        "action": {
            "type": "static",
            "fee_ppm": 50,
            "base_fee_msat": 1000,
            "max_htlc_msat": 100_000_000,
        },
    },
    {
        "name": "recover-cost + congestion",
        "when": "capacity >= 5000000 and onchain_feerate >= 100",
        "priority": 50,
        "enabled": False,
        "action": {"type": "cost", "cost_factor": 1.5, "base_fee_msat": 5000},
    },
    {
        "name": "recover-cost",
        "when": "capacity >= 5000000",
        "priority": 40,
        "enabled": False,
        "action": {"type": "cost", "cost_factor": 1.5, "base_fee_msat": 1000},
    },
    {
        "name": "micropayments + congestion",
        "when": f"{MICRO} and onchain_feerate >= 100",
        "priority": 30,
        "enabled": True,
        "action": {"type": "static", "fee_ppm": 10, "base_fee_msat": 5000},
    },
    {
        "name": "micropayments",
        "when": MICRO,
        "priority": 20,
        "enabled": True,
        "action": {"type": "static", "fee_ppm": 10, "base_fee_msat": 1000},
    },
    {
        "name": "default",
        "when": "always",
        "priority": 10,
        "enabled": True,
        "action": {
            "type": "proportional",
            "min_fee_ppm": 100,
            "max_fee_ppm": 300,
            "base_fee_msat": 1000,
        },
    },
]


def chan(ratio: float = 0.5, capacity: int = 1_000_000, **kw: Any) -> ChannelMetrics:
    local = round(capacity * 1000 * ratio)
    fields: dict[str, Any] = {
        "channel_id": "800000x1x0",
        "peer_id": "02" + "d" * 64,
        "peer_alias": "dave",
        "capacity_sat": capacity,
        "local_msat": local,
        "remote_msat": capacity * 1000 - local,
        "active": True,
        "age_days": 100.0,
        "local_policy": RoutingPolicy(1000, 500, 40, 1000, 990_000_000),
        "remote_policy": RoutingPolicy(0, 200, 40, 1000, 990_000_000),
    }
    fields.update(kw)
    return ChannelMetrics(**fields)


def net(feerate: int = 10) -> NetworkContext:
    return NetworkContext(
        True, peers={A: PeerInfo(10, 10**8, 300, 3)}, onchain_feerate_sat_vb=feerate
    )


def test_sample_imports_to_expected_rules() -> None:
    imp = import_chargelnd(SAMPLE)
    assert imp.rules == EXPECTED_RULES
    assert imp.unsupported == [
        "[mydefaults] min_fee_ppm_delta: not supported (Daznode's validator applies its own "
        "minimum step and deadband); section imported without it",
        "[new-channels] time_lock_delta: not supported (rules set fee rates, base fees, "
        "inbound fees and max_htlc only); section imported without it",
        "[recover-cost] chan.initiator: not supported (Daznode's metrics do not record who "
        "opened a channel); rule imported disabled (it would match more channels)",
        "[expensive] strategy = match_peer: not supported (copying the peer's fees is not a "
        "rule action); section skipped",
        "[micropayments] min_htlc_msat: not supported (rules set fee rates, base fees, "
        "inbound fees and max_htlc only); section imported without it",
        "[default] min_fee_ppm_delta: not supported (Daznode's validator applies its own "
        "minimum step and deadband); section imported without it",
    ]
    notes = "\n".join(imp.notes)
    assert "144 blocks a day" in notes
    assert "[new-channels] takes defaults from [mydefaults], [congestion]" in notes
    assert "154 vB" in notes
    assert "[default] is the last rule" in notes
    assert "13 rule(s) from 12 section(s)" in notes


def test_sample_rules_behave_like_charge_lnd() -> None:
    rules = parse_rules(import_chargelnd(SAMPLE).rules)

    def outcome(ch: ChannelMetrics, ctx: NetworkContext | None = None) -> tuple:
        r = first_match(rules, ch, ctx or net())
        assert r is not None
        o = apply_rule(r, ch, ctx or net())
        return r.name, o.leave_alone, o.fee_ppm, o.base_fee_msat

    assert outcome(chan(peer_id=A)) == ("friends", False, 10, 10)
    assert outcome(chan(peer_id=B, ratio=0.05)) == ("friends", False, 10, 10)
    assert outcome(chan(peer_id=C)) == ("hands-off", True, None, None)
    assert outcome(chan(ratio=0.05)) == ("discourage-routing-out-of-balance", False, 500, 10000)
    assert outcome(chan(ratio=0.1)) == ("discourage-routing-out-of-balance", False, 500, 10000)
    assert outcome(chan(ratio=0.05, capacity=200_000, age_days=3)) == (
        "new-channels",
        False,
        1500,
        1000,
    )
    assert outcome(chan(age_days=7), net(150)) == ("new-channels + congestion", False, 1500, 5000)
    # the default: proportional 100-300 ppm, 200 at ratio 0.5
    assert outcome(chan(age_days=6.9)) == ("new-channels", False, 1500, 1000)
    busy = {7: FlowWindow(7, forwards_out=3)}
    assert outcome(chan(windows=busy)) == ("default", False, 200, 1000)
    assert outcome(chan()) == ("idle", False, 50, 1000)  # no forwards in 7 days
    assert outcome(chan(), net(100)) == ("idle + congestion", False, 50, 5000)
    # recover-cost is disabled (chan.initiator is not supported): big channels fall through
    assert outcome(chan(capacity=6_000_000, windows=busy)) == ("default", False, 200, 1000)
    micro = chan(channel_id="700000x100x1", windows=busy)
    assert outcome(micro) == ("micropayments", False, 10, 1000)


# -- malformed files ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("fee_ppm = 10\n[a]\nstrategy = ignore\n", "line 1: 'fee_ppm = 10' comes before any"),
        ("# comment\n\nfee_ppm = 1\n", "line 3"),
        ("[a\nstrategy = ignore\n", "line 1"),
        ("[a]\nstrategy = ignore\n[b]\nstrategy = ignore\n[a]\n", "line 5: section [a] appears"),
        ("[a]\nfee_ppm = 1\nstrategy = static\nfee_ppm = 2\n", "line 4: [a] sets 'fee_ppm' twice"),
        ("[a]\nstrategy = static\nthis line has no equals sign\n", "line 3: cannot parse"),
    ],
)
def test_malformed_ini(text: str, expected: str) -> None:
    with pytest.raises(RuleError) as info:
        import_chargelnd(text)
    assert "charge-lnd config line" in str(info.value)
    assert expected in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[a]\nstrategy = static\nfee_ppm = ten\n", "[a] fee_ppm = 'ten': expected a whole number"),
        ("[a]\nstrategy = static\nfee_ppm = 10 # ppm\n", "no comment after a value"),
        (
            "[a]\nchan.min_ratio = half\nstrategy = ignore\n",
            "[a] chan.min_ratio = 'half': expected a",
        ),
        ("[a]\nchan.min_ratio = nan\nstrategy = ignore\n", "expected a finite number"),
        (
            "[a]\nchan.disabled = maybe\nstrategy = ignore\n",
            "[a] chan.disabled = 'maybe': expected true",
        ),
        ("[a]\nchan.activity_period = 7w\nstrategy = ignore\n", "chan.activity_period = '7w'"),
        ("[a]\nstrategy = cost\ncost_factor = lots\n", "[a] cost_factor = 'lots'"),
    ],
)
def test_bad_values(text: str, expected: str) -> None:
    with pytest.raises(RuleError) as info:
        import_chargelnd(text)
    assert expected in str(info.value)


@pytest.mark.parametrize("text", ["", "\n\n", "# only comments\n; and more\n"])
def test_empty_file(text: str) -> None:
    imp = import_chargelnd(text)
    assert imp.rules == [] and imp.unsupported == []
    assert imp.notes == ["the file defines no policies; nothing imported"]


# -- mappings ----------------------------------------------------------------------------


def single(text: str) -> tuple[dict[str, Any], list[str], list[str]]:
    imp = import_chargelnd(text)
    assert len(imp.rules) == 1, imp.rules
    return imp.rules[0], imp.unsupported, imp.notes


def test_criteria_map_to_metrics() -> None:
    doc, unsupported, _ = single(
        "[p]\nchan.min_capacity = 1_000_000\nchan.max_capacity = 9000000\n"
        "chan.min_local_balance = 1\nchan.max_local_balance = 2\n"
        "chan.min_remote_balance = 3\nchan.max_remote_balance = 4\n"
        "chan.min_base_fee_msat = 5\nchan.max_base_fee_msat = 6\n"
        "chan.min_fee_ppm = 7\nchan.max_fee_ppm = 8\nchan.disabled = false\n"
        "node.min_channels = 9\nnode.max_channels = 10\nnode.min_capacity = 11\n"
        "node.max_capacity = 12\nonchain.min_fee_rate = 1.5\nonchain.max_fee_rate = 300\n"
        "chan.min_age = 1000\nchan.max_age = 4320\nchan.min_ratio = 0.00001\nchan.max_ratio = 1\n"
        "strategy = static\nfee_ppm = 1\n"
    )
    assert unsupported == []
    assert doc["when"] == (
        "capacity >= 1000000 and capacity <= 9000000 and local >= 1 and local <= 2 and "
        "remote >= 3 and remote <= 4 and peer_base_fee_msat >= 5 and peer_base_fee_msat <= 6 "
        "and peer_fee_ppm >= 7 and peer_fee_ppm <= 8 and peer_disabled == false and "
        "peer_channels >= 9 and peer_channels <= 10 and peer_capacity >= 11 and "
        "peer_capacity <= 12 and onchain_feerate >= 1.5 and onchain_feerate <= 300 and "
        "age_days >= 6.944444444444445 and age_days <= 30 and ratio >= 0.00001 and ratio <= 1"
    )
    rule = parse_rules([doc])[0]
    # 1000 blocks / 144 is the same float the metric computes from blocks
    assert isinstance(rule.condition, And)
    assert Compare("age_days", ">=", 1000 / 144) in rule.condition.operands


def test_activity_period() -> None:
    doc, unsupported, _ = single(
        "[p]\nchan.activity_period = 30d\nchan.min_htlcs_in = 1\nchan.max_htlcs_in = 2\n"
        "chan.min_htlcs_out = 3\nchan.max_htlcs_out = 4\nchan.min_sats_in = 5\n"
        "chan.max_sats_in = 6\nchan.min_sats_out = 7\nchan.max_sats_out = 8\n"
        "strategy = ignore\n"
    )
    assert unsupported == []
    assert doc["when"] == (
        "age_days >= 30 and forwards_in_30d >= 1 and forwards_in_30d <= 2 and "
        "forwards_30d >= 3 and forwards_30d <= 4 and sats_in_30d >= 5 and sats_in_30d <= 6 "
        "and sats_out_30d >= 7 and sats_out_30d <= 8"
    )
    # seconds, minutes and hours are read like charge-lnd does
    for period, metric in (
        ("86400", "forwards_1d"),
        ("1440m", "forwards_1d"),
        ("168h", "forwards_7d"),
        ("604800s", "forwards_7d"),
    ):
        doc, _, _ = single(
            f"[p]\nchan.activity_period={period}\nchan.max_htlcs_out=0\nstrategy=ignore\n"
        )
        assert metric in doc["when"] and doc["enabled"]
    # present and false: charge-lnd then matches channels younger than the period too
    doc, _, _ = single(
        "[p]\nchan.activity_period = 1d\nchan.activity_period_ignore_channel_age = false\n"
        "chan.max_htlcs_out = 0\nstrategy = ignore\n"
    )
    assert doc["when"] == "forwards_1d <= 0"
    doc, _, _ = single(
        "[p]\nchan.activity_period = 1d\nchan.activity_period_ignore_channel_age = true\n"
        "strategy = ignore\n"
    )
    assert doc["when"] == "age_days >= 1"


def test_activity_over_other_periods_or_without_period() -> None:
    doc, unsupported, _ = single(
        "[slow]\nchan.activity_period = 14d\nchan.max_htlcs_out = 0\nstrategy = static\n"
        "fee_ppm = 50\n"
    )
    assert doc["enabled"] is False and doc["when"] == "age_days >= 14"
    assert unsupported == [
        "[slow] chan.max_htlcs_out: not supported over chan.activity_period = 14d (Daznode "
        "counts forwards over 1, 7 or 30 days); rule imported disabled (it would match more "
        "channels)"
    ]
    doc, unsupported, notes = single("[p]\nchan.max_htlcs_out = 0\nstrategy = ignore\n")
    assert doc["when"] == "always" and doc["enabled"] and unsupported == []
    assert any("[p] chan.max_htlcs_out: charge-lnd ignores these without" in n for n in notes)
    doc, unsupported, _ = single(
        "[p]\nchan.activity_period = 7d\nchan.min_htlcs_ratio = 0.5\nstrategy = ignore\n"
    )
    assert doc["enabled"] is False
    assert unsupported[0].startswith("[p] chan.min_htlcs_ratio: not supported")


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ("chan.private = true", "[p] chan.private: not supported"),
        ("chan.initiator = false", "[p] chan.initiator: not supported"),
        ("chan.max_count_pending_htlcs = 5", "[p] chan.max_count_pending_htlcs: not supported"),
        ("chan.min_next_pending_htlc_expiry = 5", "[p] chan.min_next_pending_htlc_expiry"),
        ("node.min_shared_ratio = 0.5", "[p] node.min_shared_ratio: not supported"),
        ("node.max_shared_capacity_active = 5", "[p] node.max_shared_capacity_active"),
        ("onchain.synced_to_chain = false", "[p] onchain.synced_to_chain: not supported"),
        (f"node.id = file:///home/lnd/friends.list, {A}", "[p] node.id: file reference"),
        ("chan.id = file:///home/lnd/pool.txt", "[p] chan.id: file reference"),
        ("chan.min_ratio = ${mydefaults:ratio}", "[p] chan.min_ratio: ${...} interpolation"),
    ],
)
def test_unsupported_criteria_import_disabled(keys: str, message: str) -> None:
    doc, unsupported, _ = single(f"[p]\n{keys}\nstrategy = static\nfee_ppm = 7\n")
    assert doc["enabled"] is False
    assert doc["action"] == {"type": "static", "fee_ppm": 7}
    assert any(u.startswith(message) and "rule imported disabled" in u for u in unsupported)


def test_file_reference_keeps_inline_ids() -> None:
    doc, _, _ = single(f"[p]\nnode.id = file:///x.list, {A}\nstrategy = ignore\n")
    assert doc["when"] == f'peer in ["{A}"]' and doc["enabled"] is False


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ("min_fee_ppm_delta = 10", "[p] min_fee_ppm_delta: not supported"),
        ("min_inbound_fee_ppm_delta = 10", "[p] min_inbound_fee_ppm_delta: not supported"),
        ("time_lock_delta = 80", "[p] time_lock_delta: not supported"),
        ("min_htlc_msat = 1000", "[p] min_htlc_msat: not supported"),
        ("max_htlc_msat_ratio = 0.5", "[p] max_htlc_msat_ratio: not supported"),
        ("cb_max_pending = 5", "[p] cb_max_pending: not supported"),
        ("cb_mode = 1", "[p] cb_mode: not supported"),
        ("sum_peer_chans = true", "[p] sum_peer_chans: not supported"),
        ("onchain.conf_target = 2", "[p] onchain.conf_target: not supported"),
        ("fee_pmm = 5", "[p] fee_pmm: unknown to charge-lnd, which ignores it"),
        ("base_fee_msat = ${x}", "[p] base_fee_msat: ${...} interpolation"),
    ],
)
def test_unsupported_properties_are_left_out(keys: str, message: str) -> None:
    doc, unsupported, _ = single(
        f"[p]\nchan.min_ratio = 0.5\n{keys}\nstrategy = static\nfee_ppm = 7\n"
    )
    assert doc["enabled"] is True and doc["when"] == "ratio >= 0.5"
    assert doc["action"] == {"type": "static", "fee_ppm": 7}
    assert [u for u in unsupported if u.startswith(message)], unsupported


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("strategy = match_peer", "[p] strategy = match_peer: not supported"),
        ("strategy = onchain_fee\nonchain_fee_btc = 0.1", "[p] strategy = onchain_fee"),
        ("strategy = disable", "[p] strategy = disable: not supported"),
        ("strategy = use_config\nconfig_file = other.config", "[p] strategy = use_config"),
        ("strategy = statik\nfee_ppm = 5", "[p] strategy = statik: unknown to charge-lnd"),
        ("foo.bar = 1\nstrategy = ignore", "[p] foo.bar: unknown namespace 'foo'"),
        ("chan.min_ratioo = 1\nstrategy = ignore", "[p] chan.min_ratioo: unknown to charge-lnd"),
        ("strategy = static\nbase_fee_msat = 5", "[p] strategy = static without fee_ppm"),
        (
            "strategy = proportional\nmin_fee_ppm = 5",
            "[p] strategy = proportional without max_fee_ppm",
        ),
        (
            "strategy = proportional\nmin_fee_ppm = 500\nmax_fee_ppm = 5",
            "[p] min_fee_ppm 500 > max_fee_ppm 5",
        ),
    ],
)
def test_sections_that_cannot_be_represented_are_skipped(section: str, message: str) -> None:
    imp = import_chargelnd(f"[p]\n{section}\n\n[q]\nstrategy = ignore\n")
    assert [r["name"] for r in imp.rules] == ["q"]
    assert imp.unsupported[0].startswith(message)
    assert imp.unsupported[0].endswith("section skipped")
    assert len(imp.unsupported) == 1


def test_actions() -> None:
    doc, unsupported, notes = single(
        "[p]\nstrategy = static\nfee_ppm = 300\ninbound_level_ppm = 100\n"
        "inbound_base_fee_msat = -10\nmax_htlc_msat = 5000\n"
    )
    assert doc["action"] == {
        "type": "static",
        "fee_ppm": 300,
        "inbound_fee_ppm": -200,
        "inbound_base_fee_msat": -10,
        "max_htlc_msat": 5000,
    }
    assert any("min(0, level - fee_ppm) = -200" in n for n in notes)
    doc, _, _ = single("[p]\nstrategy = static\nfee_ppm = 50\ninbound_level_ppm = 100\n")
    assert doc["action"]["inbound_fee_ppm"] == 0
    doc, unsupported, _ = single(
        "[p]\nstrategy = proportional\nmin_fee_ppm = 0\nmax_fee_ppm = 10\ninbound_level_ppm = 5\n"
    )
    assert doc["action"] == {"type": "proportional", "min_fee_ppm": 0, "max_fee_ppm": 10}
    assert unsupported[0].startswith("[p] inbound_level_ppm: not supported with strategy")
    doc, _, _ = single("[p]\nstrategy = cost\n")
    assert doc["action"] == {"type": "cost"}
    doc, unsupported, _ = single("[p]\nstrategy = ignore_fees\nmax_htlc_msat = 5000\n")
    assert doc["action"] == {"type": "leave_alone"}
    assert unsupported[0].startswith("[p] max_htlc_msat: strategy ignore_fees is imported as")


def test_values_outside_daznode_ranges_are_clamped() -> None:
    doc, unsupported, _ = single(
        "[p]\nstrategy = static\nfee_ppm = 210_000\nbase_fee_msat = 210_000\ninbound_fee_ppm = 50\n"
    )
    assert doc["action"] == {
        "type": "static",
        "fee_ppm": 100_000,
        "base_fee_msat": 210_000,
        "inbound_fee_ppm": 0,
    }
    assert unsupported == [
        "[p] fee_ppm = 210000: outside Daznode's range 0..100000; imported as 100000",
        "[p] inbound_fee_ppm = 50: outside Daznode's range -100000..0; imported as 0",
    ]


def test_ids() -> None:
    doc, unsupported, _ = single(
        f"[p]\nnode.id = {A.upper()}, {B}\n  {C}\n  not-a-key\nstrategy = ignore\n"
    )
    assert doc["when"] == f'peer in ["{A}", "{B}", "{C}"]'
    assert unsupported == [
        "[p] node.id: 'not-a-key' is not a node id (66 hex digits); left out (it can never match)"
    ]
    doc, unsupported, _ = single(
        "[p]\nchan.id = 636374x680x1, 636374:680:2,769658139449753601\nstrategy = ignore\n"
    )
    assert doc["when"] == 'channel in ["636374x680x1", "636374x680x2", "700000x100x1"]'
    doc, unsupported, _ = single("[p]\nchan.id = 12abc\nstrategy = ignore\n")
    assert doc["enabled"] is False
    assert (
        unsupported[0] == "[p] chan.id: '12abc' is not a channel id; left out (it can never match)"
    )


def test_default_sections() -> None:
    imp = import_chargelnd("[default]\nchan.min_ratio = 0.5\nstrategy = static\nfee_ppm = 9\n")
    assert imp.rules == [
        {
            "name": "default",
            "when": "always",
            "priority": 10,
            "enabled": True,
            "action": {"type": "static", "fee_ppm": 9},
        }
    ]
    assert imp.unsupported == [
        "[default] chan.min_ratio: charge-lnd ignores criteria in [default]; not imported"
    ]
    imp = import_chargelnd("[default]\nbase_fee_msat = 5\n\n[p]\nstrategy = ignore\n")
    assert [r["name"] for r in imp.rules] == ["p"]
    assert "[default] has no strategy, so it sets nothing" in imp.notes
    assert any("left to Daznode's engine" in n for n in imp.notes)
    # configparser's [DEFAULT] reaches every section, criteria included
    imp = import_chargelnd(
        "[DEFAULT]\nchan.min_capacity = 100\nbase_fee_msat = 7\n\n"
        "[p]\nstrategy = static\nfee_ppm = 1\n\n[q]\nchan.min_capacity = 5\nstrategy = cost\n"
    )
    assert [(r["name"], r["when"], r["action"]) for r in imp.rules] == [
        ("p", "capacity >= 100", {"type": "static", "fee_ppm": 1, "base_fee_msat": 7}),
        ("q", "capacity >= 5", {"type": "cost", "base_fee_msat": 7}),
    ]
    assert any("[DEFAULT] is merged into every section" in n for n in imp.notes)


def test_non_final_sections_expand_and_prune() -> None:
    imp = import_chargelnd(
        "[a]\nchan.max_ratio = 0.5\nbase_fee_msat = 5\n\n"
        "[b]\nchan.min_capacity = 100\nbase_fee_msat = 5\n\n"
        "[p]\nstrategy = static\nfee_ppm = 1\n"
    )
    # {a, b} gives the same action as {a} after it, so it is dropped
    assert [(r["name"], r["when"], r["action"].get("base_fee_msat")) for r in imp.rules] == [
        ("p + a", "ratio <= 0.5", 5),
        ("p + b", "capacity >= 100", 5),
        ("p", "always", None),
    ]
    # unconditional non-final sections fold into every rule; later ones override earlier
    imp = import_chargelnd(
        "[a]\nbase_fee_msat = 5\nmax_htlc_msat = 9\n\n[b]\nbase_fee_msat = 6\n\n"
        "[p]\nstrategy = static\nfee_ppm = 1\n"
    )
    assert imp.rules[0]["action"] == {
        "type": "static",
        "fee_ppm": 1,
        "base_fee_msat": 6,
        "max_htlc_msat": 9,
    }
    # sections after the final one do not count; the final section's own keys win
    imp = import_chargelnd(
        "[p]\nstrategy = static\nfee_ppm = 1\nbase_fee_msat = 2\n\n"
        "[a]\nchan.max_ratio = 0.5\nbase_fee_msat = 5\n\n"
        "[q]\nchan.max_ratio = 0.5\nstrategy = static\nfee_ppm = 3\nbase_fee_msat = 4\n"
    )
    assert [r["name"] for r in imp.rules] == ["p", "q"]
    # a non-final section with an unsupported criterion cannot be applied
    imp = import_chargelnd(
        "[a]\nchan.private = true\nbase_fee_msat = 5\n\n[p]\nstrategy = static\nfee_ppm = 1\n"
    )
    assert [r["name"] for r in imp.rules] == ["p"]
    assert imp.unsupported[-1].startswith("[a] (no strategy): its defaults cannot be applied")


def test_too_many_conditional_defaults() -> None:
    text = "".join(f"[d{i}]\nchan.min_capacity = {i}\nbase_fee_msat = {i}\n\n" for i in range(5))
    imp = import_chargelnd(text + "[p]\nstrategy = static\nfee_ppm = 1\n")
    assert imp.rules == []
    assert imp.unsupported == [
        "[p]: inherits from 5 conditional sections without strategy (at most 4 are combined); "
        "section skipped"
    ]
    imp = import_chargelnd(text.split("[d4]")[0] + "[p]\nstrategy = static\nfee_ppm = 1\n")
    assert len(imp.rules) == 16


def test_long_names_are_shortened_and_unique() -> None:
    long = "x" * 70
    imp = import_chargelnd(
        f"[{long}]\nchan.min_capacity = 1\nbase_fee_msat = 1\n\n"
        f"[{long}y]\nstrategy = static\nfee_ppm = 1\n\n[{long}z]\nstrategy = static\nfee_ppm = 2\n"
    )
    names = [r["name"] for r in imp.rules]
    assert len(set(names)) == len(names) == 4
    assert all(len(n) <= 64 for n in names)
    parse_rules(imp.rules)


# -- properties ---------------------------------------------------------------------------

CRITERIA = {  # key -> (channel attribute, values to try)
    "chan.min_ratio": [0.0, 0.2, 0.5, 0.8],
    "chan.max_ratio": [0.2, 0.5, 0.8, 1.0],
    "chan.min_capacity": [100_000, 1_000_000, 5_000_000],
    "chan.max_capacity": [100_000, 1_000_000, 5_000_000],
    "onchain.min_fee_rate": [5, 20, 50],
    "onchain.max_fee_rate": [5, 20, 50],
}
sections = st.lists(
    st.tuples(
        st.dictionaries(st.sampled_from(sorted(CRITERIA)), st.integers(0, 3), max_size=3),
        st.sampled_from([None, "static", "static", "ignore"]),
        st.dictionaries(
            st.sampled_from(["base_fee_msat", "max_htlc_msat"]), st.integers(1, 9), max_size=2
        ),
        st.integers(0, 2000),
    ),
    min_size=1,
    max_size=6,
).filter(lambda secs: sum(1 for s in secs if s[1] is None and s[0]) <= 4)


def _matches(criteria: dict[str, float], ratio: float, capacity: int, feerate: int) -> bool:
    got = {"ratio": ratio, "capacity": capacity, "fee_rate": feerate}
    for key, bound in criteria.items():
        value = got[key.split("_", 1)[1]]
        if key.split(".")[1].startswith("min") and not bound <= value:
            return False
        if key.split(".")[1].startswith("max") and not bound >= value:
            return False
    return True


@settings(max_examples=150, deadline=None)
@given(
    sections,
    st.none() | st.integers(0, 2000),
    st.lists(
        st.tuples(
            st.sampled_from([0.0, 0.2, 0.35, 0.5, 0.8, 1.0]),
            st.sampled_from([100_000, 1_000_000, 5_000_000]),
            st.sampled_from([5, 20, 50]),
        ),
        min_size=1,
        max_size=8,
    ),
)
def test_import_matches_charge_lnd_semantics(
    secs: list, default_fee: int | None, channels: list
) -> None:
    """A small model of charge-lnd's policy walk (policy.py: non-final sections mask the
    collected config, the first matching section with a strategy wins, [default] last)
    agrees with first_match over the imported rules."""
    lines: list[str] = []
    model: list[tuple[dict[str, float], str | None, dict[str, int]]] = []
    for i, (crit, strategy, props, fee) in enumerate(secs):
        criteria = {k: CRITERIA[k][v % len(CRITERIA[k])] for k, v in crit.items()}
        own = dict(props)
        if strategy == "static":
            own["fee_ppm"] = fee
        lines.append(f"[s{i}]")
        lines += [f"{k} = {v}" for k, v in criteria.items()]
        lines += [f"{k} = {v}" for k, v in own.items()]
        if strategy:
            lines.append(f"strategy = {strategy}")
        model.append((criteria, strategy, own))
    if default_fee is not None:
        lines += ["[default]", "strategy = static", f"fee_ppm = {default_fee}"]
    rules = parse_rules(import_chargelnd("\n".join(lines) + "\n").rules)

    for ratio, capacity, feerate in channels:
        config: dict[str, int] = {}
        expected: tuple | None = None
        for criteria, strategy, own in model:
            if _matches(criteria, ratio, capacity, feerate):
                config.update(own)
                if strategy:
                    expected = _model_outcome(strategy, config)
                    break
        else:
            if default_fee is not None:
                config.update({"fee_ppm": default_fee})
                expected = _model_outcome("static", config)
        ch, ctx = chan(ratio=ratio, capacity=capacity), net(feerate)
        rule = first_match(rules, ch, ctx)
        got = None
        if rule is not None:
            o = apply_rule(rule, ch, ctx)
            got = ("leave",) if o.leave_alone else (o.fee_ppm, o.base_fee_msat, o.max_htlc_msat)
        assert got == expected, (lines, ratio, capacity, feerate)


def _model_outcome(strategy: str, config: dict[str, int]) -> tuple:
    if strategy == "ignore":
        return ("leave",)
    return (config["fee_ppm"], config.get("base_fee_msat"), config.get("max_htlc_msat"))


INI_LINES = [
    "[a]",
    "[b]",
    "[default]",
    "[DEFAULT]",
    "strategy = static",
    "strategy = proportional",
    "strategy = cost",
    "strategy = ignore",
    "strategy = match_peer",
    "fee_ppm = 100",
    "fee_ppm = -5",
    "min_fee_ppm = 10",
    "max_fee_ppm = 5",
    "max_fee_ppm = 500",
    "base_fee_msat = 1_000",
    "chan.min_ratio = 0.5",
    "chan.max_age = 144",
    "node.id = 02",
    "chan.private = true",
    "chan.activity_period = 7d",
    "chan.max_htlcs_out = 0",
    "inbound_level_ppm = 30",
    "min_fee_ppm_delta = 5",
    "cost_factor = 0",
    "onchain.x = 1",
    "# comment",
    "",
    "  continued",
    "garbage",
    "max_htlc_msat = 0",
    "inbound_fee_ppm = 9",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(INI_LINES), max_size=20) | st.text(max_size=80))
def test_importer_output_always_validates(lines: list[str] | str) -> None:
    text = lines if isinstance(lines, str) else "\n".join(lines)
    try:
        imp = import_chargelnd(text)
    except RuleError as e:
        # errors about the file, never rule documents the importer got wrong
        assert str(e).startswith(("charge-lnd config", "[")), str(e)
        return
    assert parse_rules(imp.rules) is not None
