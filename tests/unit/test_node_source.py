"""Short channel id conversions and the policy value types of engine.node_source."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.node_source import (
    Channel,
    PolicyUpdate,
    RoutingPolicy,
    normalize_channel_id,
    parse_scid,
    scid_block,
    scid_from_int,
    scid_to_int,
)

KNOWN_SCID = "800000x1234x1"
KNOWN_INT = 879609302301671425

u64 = st.integers(min_value=0, max_value=(1 << 64) - 1)
blocks = st.integers(min_value=0, max_value=(1 << 24) - 1)
txs = st.integers(min_value=0, max_value=(1 << 24) - 1)
outs = st.integers(min_value=0, max_value=(1 << 16) - 1)
msat = st.integers(min_value=0, max_value=10**12)
maybe_msat = st.none() | msat


# -- short channel ids ------------------------------------------------------------------


def test_known_pair() -> None:
    assert scid_to_int(KNOWN_SCID) == KNOWN_INT
    assert scid_from_int(KNOWN_INT) == KNOWN_SCID
    assert parse_scid(KNOWN_SCID) == (800000, 1234, 1)
    assert scid_block(KNOWN_SCID) == 800000
    assert normalize_channel_id(KNOWN_SCID) == KNOWN_SCID
    assert normalize_channel_id(str(KNOWN_INT)) == KNOWN_SCID
    assert normalize_channel_id(f"  {KNOWN_INT}\n") == KNOWN_SCID
    assert normalize_channel_id(f"\t{KNOWN_SCID} ") == KNOWN_SCID


def test_extremes() -> None:
    assert scid_from_int(0) == "0x0x0"
    assert scid_to_int("0x0x0") == 0
    top = f"{(1 << 24) - 1}x{(1 << 24) - 1}x{(1 << 16) - 1}"
    assert scid_from_int((1 << 64) - 1) == top
    assert scid_to_int(top) == (1 << 64) - 1


@settings(max_examples=300, deadline=None)
@given(u64)
def test_int_round_trip(value: int) -> None:
    scid = scid_from_int(value)
    assert scid_to_int(scid) == value
    assert normalize_channel_id(str(value)) == scid
    assert normalize_channel_id(scid) == scid


@settings(max_examples=300, deadline=None)
@given(blocks, txs, outs)
def test_scid_round_trip(block: int, tx: int, out: int) -> None:
    scid = f"{block}x{tx}x{out}"
    assert parse_scid(scid) == (block, tx, out)
    value = scid_to_int(scid)
    assert 0 <= value < 1 << 64
    assert scid_from_int(value) == scid
    assert normalize_channel_id(scid) == scid
    assert normalize_channel_id(str(value)) == scid


@pytest.mark.parametrize("value", [-1, 1 << 64, (1 << 64) + 5, -(1 << 70)])
def test_scid_from_int_out_of_range(value: int) -> None:
    with pytest.raises(ValueError, match=r"not a uint64 channel id"):
        scid_from_int(value)


@pytest.mark.parametrize(
    "scid",
    [f"{1 << 24}x0x0", f"0x{1 << 24}x0", f"0x0x{1 << 16}", "99999999x1x1", "1x1x65536"],
)
def test_parse_scid_out_of_range(scid: str) -> None:
    with pytest.raises(ValueError, match=r"short channel id out of range"):
        parse_scid(scid)
    with pytest.raises(ValueError, match=r"out of range"):
        scid_to_int(scid)
    with pytest.raises(ValueError, match=r"out of range"):
        normalize_channel_id(scid)


MALFORMED = [
    "",
    "x",
    "xx",
    "1x2",
    "1x2x3x4",
    "ax1x1",
    "1x1xb",
    "1:2:3",
    "1X2X3",
    "-1x2x3",
    "1x-2x3",
    "+1x2x3",
    "1.5x2x3",
    "1x 2x3",
    "1xx3",
    "0x1234abcd",
    # Unicode digits pass str.isdigit() but are not a short channel id.
    "\u00b2x1x1",  # superscript two: int() rejects it
    "\uff11x2x3",  # fullwidth one: int() would accept it
    "\u0661x2x3",  # Arabic-Indic one
]


@pytest.mark.parametrize("scid", MALFORMED)
def test_parse_scid_malformed(scid: str) -> None:
    with pytest.raises(ValueError, match=r"not a short channel id \(BLOCKxTXxOUT\)"):
        parse_scid(scid)
    with pytest.raises(ValueError, match=r"not a short channel id"):
        scid_to_int(scid)


@pytest.mark.parametrize("value", [*MALFORMED[1:], "  ", "\uff11\uff12", "\u0661\u0662\u0663"])
def test_normalize_malformed(value: str) -> None:
    with pytest.raises(ValueError, match=r"not a short channel id"):
        normalize_channel_id(value)


@pytest.mark.parametrize("value", ["18446744073709551616", "99999999999999999999999"])
def test_normalize_decimal_out_of_range(value: str) -> None:
    with pytest.raises(ValueError, match=r"not a uint64 channel id"):
        normalize_channel_id(value)


def test_normalize_returns_canonical_form() -> None:
    # Channel ids are compared as strings everywhere above the adapters.
    assert normalize_channel_id("0800000x01234x001") == KNOWN_SCID
    assert normalize_channel_id("0000") == "0x0x0"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("0123456789x \u00b2\uff11-"), max_size=24) | st.text())
def test_parse_scid_total(text: str) -> None:
    """Any string either parses into in-range parts or raises a ValueError saying why."""
    try:
        block, tx, out = parse_scid(text)
    except ValueError as exc:
        assert "short channel id" in str(exc)
        return
    assert 0 <= block < 1 << 24 and 0 <= tx < 1 << 24 and 0 <= out < 1 << 16
    assert normalize_channel_id(text) == f"{block}x{tx}x{out}"


# -- policies ---------------------------------------------------------------------------


POLICY = RoutingPolicy(
    base_fee_msat=1000,
    fee_rate_ppm=250,
    cltv_delta=80,
    htlc_min_msat=1000,
    htlc_max_msat=990_000_000,
    inbound_base_fee_msat=-100,
    inbound_fee_rate_ppm=-20,
    disabled=True,
)


@pytest.mark.parametrize(
    ("base", "ppm", "amount", "fee"),
    [
        (0, 0, 123_456_789, 0),
        (1000, 0, 5_000_000, 1000),
        (1000, 100, 1_000_000, 1100),
        (0, 100, 9_999, 0),  # 0.9999 msat rounds down
        (0, 1, 1_999_999, 1),
        (0, 1, 2_000_000, 2),
        (1, 1_000_000, 7, 8),
        (0, 250, 100_000_000_000, 25_000_000),
        (500, 1, 0, 500),
    ],
)
def test_fee_msat(base: int, ppm: int, amount: int, fee: int) -> None:
    assert RoutingPolicy(base, ppm, 40, 1, 10**12).fee_msat(amount) == fee


@settings(max_examples=200, deadline=None)
@given(msat, st.integers(0, 100_000), msat, msat)
def test_fee_msat_formula(base: int, ppm: int, amount: int, more: int) -> None:
    policy = RoutingPolicy(base, ppm, 40, 1, 10**12)
    fee = policy.fee_msat(amount)
    exact = base + Fraction(amount * ppm, 1_000_000)
    assert fee <= exact < fee + 1  # floor of the BOLT #7 formula
    assert policy.fee_msat(amount + more) >= fee


def test_apply_empty_update_keeps_everything() -> None:
    assert PolicyUpdate().apply_to(POLICY) == POLICY
    plain = RoutingPolicy(0, 1, 40, 1, 2000)
    assert PolicyUpdate().apply_to(plain) == plain
    assert plain.inbound_base_fee_msat is None and plain.inbound_fee_rate_ppm is None


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(PolicyUpdate)])
def test_apply_one_field(name: str) -> None:
    new = PolicyUpdate(**{name: 7}).apply_to(POLICY)
    assert getattr(new, name) == 7
    for f in dataclasses.fields(RoutingPolicy):
        if f.name != name:
            assert getattr(new, f.name) == getattr(POLICY, f.name), f.name
    # An explicit zero is a value, not "keep".
    assert getattr(PolicyUpdate(**{name: 0}).apply_to(POLICY), name) == 0


@settings(max_examples=200, deadline=None)
@given(
    st.builds(
        RoutingPolicy,
        base_fee_msat=msat,
        fee_rate_ppm=msat,
        cltv_delta=st.integers(1, 2016),
        htlc_min_msat=msat,
        htlc_max_msat=msat,
        inbound_base_fee_msat=st.none() | st.integers(-(10**6), 0),
        inbound_fee_rate_ppm=st.none() | st.integers(-(10**6), 0),
        disabled=st.booleans(),
    ),
    st.builds(
        PolicyUpdate,
        base_fee_msat=maybe_msat,
        fee_rate_ppm=maybe_msat,
        cltv_delta=st.none() | st.integers(1, 2016),
        htlc_min_msat=maybe_msat,
        htlc_max_msat=maybe_msat,
        inbound_base_fee_msat=st.none() | st.integers(-(10**6), 0),
        inbound_fee_rate_ppm=st.none() | st.integers(-(10**6), 0),
    ),
)
def test_apply_to_merges(current: RoutingPolicy, update: PolicyUpdate) -> None:
    new = update.apply_to(current)
    for f in dataclasses.fields(PolicyUpdate):
        wanted = getattr(update, f.name)
        assert getattr(new, f.name) == (getattr(current, f.name) if wanted is None else wanted)
    assert new.disabled == current.disabled
    assert update.apply_to(new) == new  # idempotent


def test_channel_helpers() -> None:
    ch = Channel(
        channel_id=KNOWN_SCID,
        native_id=str(KNOWN_INT),
        channel_point="00" * 32 + ":1",
        peer_id="02" + "11" * 32,
        peer_alias="peer",
        capacity_sat=1_000_000,
        local_balance_msat=250_000_000,
        remote_balance_msat=750_000_000,
        active=True,
        private=False,
        local_policy=POLICY,
        remote_policy=None,
    )
    assert ch.funding_height == 800000
    assert ch.age_days(800000 + 288) == 2.0
    assert ch.age_days(799000) == 0  # never negative
    assert ch.local_ratio == 0.25
    empty = dataclasses.replace(ch, local_balance_msat=0, remote_balance_msat=0)
    assert empty.local_ratio == 0.0
